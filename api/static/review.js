// Keyboard review of a group page: arrows between groups, 1-9 tick "keep", Enter applies, U undoes, ? shows keys.
(() => {
  const $ = (sel) => document.querySelector(sel);
  const dialog = $("#keys");
  const remember = (box) => localStorage.setItem("dupesift.advance", box.checked ? "1" : "0");
  const restoreAdvance = () => {
    const box = $("#advance");
    if (box && localStorage.getItem("dupesift.advance") === "0") box.checked = false;
  };
  restoreAdvance();
  document.body.addEventListener("htmx:afterSwap", restoreAdvance);
  document.body.addEventListener("change", (e) => { if (e.target.id === "advance") remember(e.target); });
  document.body.addEventListener("click", (e) => {
    if (e.target.id === "keys-help") dialog.showModal();
  });
  const click = (sel) => { const el = $(sel); if (el) { el.click(); return true; } return false; };
  // htmx (loaded in the head) wires the resolve form on DOMContentLoaded; this script runs before that, at the
  // end of the body, so keys wait for it: Enter before it would submit the form natively, as a plain GET.
  let ready = false;
  const start = () => { ready = true; document.documentElement.dataset.keys = "ready"; };  // tests wait for this
  document.addEventListener("keydown", (e) => {
    if (!ready || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const typing = t.matches && t.matches("input[type=text], input[type=number], input:not([type]), textarea, select");
    if (typing) return;
    if (e.key === "?") { e.preventDefault(); dialog.open ? dialog.close() : dialog.showModal(); return; }
    if (dialog.open) return;
    if (e.key === "ArrowLeft") { if ($("#prev-group")) { e.preventDefault(); location.href = $("#prev-group").href; } return; }
    if (e.key === "ArrowRight") { if ($("#next-group")) { e.preventDefault(); location.href = $("#next-group").href; } return; }
    if (/^[1-9]$/.test(e.key)) {
      const box = document.querySelector(`.member[data-key="${e.key}"] input[name=keep]`);
      if (box) { e.preventDefault(); box.checked = !box.checked; box.focus(); }
      return;
    }
    if (e.key === "Enter") {
      if (t.matches && t.matches("button, a, summary")) return;  // Enter on a control does what it says
      if (click("#move-others")) e.preventDefault();
      return;
    }
    if (e.key === "u" || e.key === "U") {
      if (click("#undo") || click("#restore")) e.preventDefault();
    }
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
