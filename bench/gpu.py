#!/usr/bin/env python3
"""GPU throughput for issue 32, with the CPU floor of the same run beside each GPU row.

    python bench/gpu.py [--work var/bench-gpu] [--quick] [--parts embed,decode,pairs,fp16,ingest]
                        [--part-timeout 150] [--library DIR] [--model M.onnx]

Parts (each in its own process, killed at ``--part-timeout`` seconds; a part whose requirement is missing prints
one ``skipped: ...`` row naming it instead of failing):

- embed: images/s of the shipped ONNX model over a batch-size sweep, per onnxruntime provider present (CUDA; CUDA
  with the fp16 copy of ``workers.gpu.fp16_model``; TensorRT fp16 when onnxruntime has it; CPU, the floor).
- decode: 12 MP JPEGs (``bench/ingest.py``'s generator when ../shared photos are there, else a synthetic noisy
  set of the same size and quality) to model pixels: ``indexer.decode`` (read + SHA-256 + draft decode) on every
  core, against nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``) + resize on the GPU, per batch size.
- pairs: all-pairs top-k (IndexFlatIP, k = ``indexer.pairs.TOPK_START``) of N random unit vectors of the model's
  dimension: faiss on GPU when faiss has GPUs, a chunked matmul + top-k in PyTorch on CUDA as the peer, faiss
  (or numpy) on the CPU at a smaller N as the floor, with its time scaled by (N / n)².
- fp16: how far the fp16 copy's embeddings move from fp32's on the public eval library (needs onnxconverter-common
  and, for workers.gpu, celery; on CUDA when present, else on the CPU provider).
- ingest: ``indexer.index.Index.ingest`` of the 12 MP set with the default settings and whichever providers
  onnxruntime has (the in-process ingest a default worker runs per batch; files/s).

Prints one markdown table (part, device / provider, setting, figure, unit, note) and writes WORK/gpu.json.
No network: the model comes from the repository, packages from what is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from bench import bigset

PARTS = ("embed", "decode", "pairs", "fp16", "ingest")
QUICK_SIZE = (1600, 1200)  # --quick: small stand-ins, so the CPU test stays short

# (full run, --quick) sizes of each sweep
EMBED_BATCHES = ((1, 16, 64, 128, 256, 512), (1, 8))
NVJPEG_BATCHES = ((8, 32, 128), (2,))
BIG_FILES = (256, 4)
PAIRS_N = (1_000_000, 2_000)
PAIRS_CPU_N = (20_000, 1_000)
FP16_FILES = (0, 24)  # 0 = the whole library
SETTING_S = (3.0, 0.3)  # seconds each timed setting runs for (at least one pass)


class Skip(Exception):
    """A part's requirement is missing: reported as one row, not a failure."""


# ---------------------------------------------------------------------------------------------------- rows


class Rows:
    """Rows of one part, appended to WORK/rows-PART.jsonl as they come (a part killed at its limit keeps them)."""

    def __init__(self, path: Path, part: str) -> None:
        self.path, self.part = path, part

    def add(self, device: str, setting: str, figure: float | None, unit: str, note: str = "") -> None:
        row = {"part": self.part, "device": device, "setting": setting, "figure": figure, "unit": unit, "note": note}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def skip(self, device: str, why: str) -> None:
        self.add(device, "-", None, "-", f"skipped: {why}")


def need(module: str, why: str = "") -> object:
    """Import ``module`` or raise Skip naming it (and what it is for)."""
    try:
        return __import__(module, fromlist=["_"])
    except Exception as exc:  # an ImportError, or a broken native library underneath
        raise Skip(f"needs {module}{' (' + why + ')' if why else ''}: {type(exc).__name__}: {exc}") from exc


def timed(fn: Callable[[], int], seconds: float, deadline: float) -> float:
    """Items per second of ``fn`` (returns the items it did): one warm-up call, then calls for ``seconds``."""
    fn()
    done, t0 = 0, time.perf_counter()
    while True:
        done += fn()
        now = time.perf_counter()
        if now - t0 >= seconds or now >= deadline:
            return done / (now - t0)


def cuda_torch() -> object | None:
    """torch when it is importable and sees a CUDA device, else None."""
    try:
        import torch
    except Exception:  # noqa: BLE001
        return None
    return torch if torch.cuda.is_available() else None


def model_path(given: Path | None) -> Path:
    """``--model``, else the service's (``Settings().model_path``, so DUPESIFT_MODEL_PATH counts)."""
    if given is not None:
        return given
    settings = need("indexer.config", "the model path from Settings").Settings()
    return settings.model_path


# ---------------------------------------------------------------------------------------------------- 12 MP set


def big_set(work: Path, n: int, quick: bool) -> tuple[Path, str]:
    """``n`` 12 MP JPEGs (small stand-ins with ``quick``), made once (``bench/bigset.py``): from the shared
    photos where they are, else synthetic ones (a GPU machine has no ../shared)."""
    photos = SHARED / "data" / "photos"
    if not quick and any(photos.glob("*.JPEG")):
        w, h = bigset.SIZE
        return bigset.make_big(work / "big12mp", n, photos), f"{n} × {w}×{h} q{bigset.QUALITY} from ../shared photos"
    w, h = QUICK_SIZE if quick else bigset.SIZE
    out = bigset.make_synthetic(work / f"synthetic-{w}x{h}", n, (w, h))
    return out, f"{n} × {w}×{h} q{bigset.QUALITY} synthetic noisy JPEGs"


def jpegs(folder: Path) -> list[Path]:
    return sorted(folder.glob("big_*.jpg"))


# ---------------------------------------------------------------------------------------------------- parts


def part_embed(rows: Rows, a: argparse.Namespace, deadline: float) -> None:
    """Images/s of the model per provider and batch size (uint8 pixels in, unit vectors out, as a worker)."""
    from indexer.embedder import OnnxEmbedder, available_providers

    q = int(a.quick)
    model = model_path(a.model)
    have = available_providers()
    cpu = OnnxEmbedder(model, providers=["CPUExecutionProvider"])
    size, rng = cpu.spec.input_size, np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(max(EMBED_BATCHES[q]), size, size, 3), dtype=np.uint8)

    def sweep(device: str, embed: Callable[[np.ndarray], np.ndarray], batches: tuple[int, ...]) -> None:
        for b in batches:
            if time.time() >= deadline:
                rows.add(device, f"batch {b}", None, "images/s", "not run: part time limit")
                continue
            rate = timed(lambda b=b: len(embed(pixels[:b])), SETTING_S[q], deadline)
            rows.add(device, f"batch {b}", round(rate, 1), "images/s", f"{size}px, {cpu.dim}-d")

    sessions: list[tuple[str, Callable[[], object]]] = []
    if "CUDAExecutionProvider" in have:
        sessions.append(("onnxruntime CUDA fp32", lambda: OnnxEmbedder(model, providers=["CUDAExecutionProvider"])))

        def cuda16() -> object:
            from workers.gpu import fp16_model

            path, weights = fp16_model(model, a.work / "models")
            return OnnxEmbedder(path, providers=["CUDAExecutionProvider"], weights=weights)

        sessions.append(("onnxruntime CUDA fp16 (workers.gpu.fp16_model)", cuda16))
    else:
        rows.skip("onnxruntime CUDA", f"onnxruntime {need('onnxruntime').__version__} has no CUDAExecutionProvider "
                  f"(providers: {', '.join(have)}); install onnxruntime-gpu")
    if "TensorrtExecutionProvider" in have:
        trt = [("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                              "trt_engine_cache_path": str(a.work / "trt")}),
               "CUDAExecutionProvider"]
        sessions.append(("onnxruntime TensorRT fp16", lambda: OnnxEmbedder(model, providers=trt)))
    else:
        rows.skip("onnxruntime TensorRT fp16", "onnxruntime has no TensorrtExecutionProvider (needs onnxruntime-gpu "
                  "built with TensorRT and the TensorRT libraries)")
    for name, make in sessions:
        try:
            emb = make()
        except Exception as exc:  # noqa: BLE001 - a provider that fails to start is a finding, not a crash
            rows.skip(name, f"{type(exc).__name__}: {exc}")
            continue
        sweep(f"{name} [{emb.providers[0]}]", emb.embed, EMBED_BATCHES[q])
    sweep("onnxruntime CPU (floor)", cpu.embed, EMBED_BATCHES[q])


def _decode_one(args: tuple[str, int, int, int]) -> int:
    """indexer.decode's path for one file: read + SHA-256, then draft decode to model pixels."""
    from indexer.decode import load_image, read_file

    path, size, max_pixels, max_bytes = args
    data, _ = read_file(Path(path), max_bytes)
    load_image(data, max_pixels=max_pixels, size=size)
    return 1


def part_decode(rows: Rows, a: argparse.Namespace, deadline: float) -> None:
    """12 MP JPEG -> model pixels: indexer.decode on every core vs nvJPEG + resize on the GPU."""
    from indexer.config import Settings
    from indexer.embedder import OnnxEmbedder

    q = int(a.quick)
    settings = Settings()
    size = OnnxEmbedder(model_path(a.model), providers=["CPUExecutionProvider"]).spec.input_size
    files = jpegs(a.big)
    cores = os.cpu_count() or 1
    jobs = [(str(p), size, settings.max_pixels, settings.max_file_bytes) for p in files]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_decode_one, jobs[:cores]))  # start the workers before the clock
        t = time.perf_counter()
        list(pool.map(_decode_one, jobs, chunksize=max(1, len(jobs) // (cores * 4))))
        rate = len(jobs) / (time.perf_counter() - t)
    rows.add(f"CPU, {cores} processes (floor)", "read + SHA-256 + draft decode (indexer.decode)", round(rate, 1),
             "files/s", a.big_note)
    torch = cuda_torch()
    if torch is None:
        rows.skip("nvJPEG (torchvision)", "needs torch with a CUDA device")
        return
    try:
        io = need("torchvision.io", "nvJPEG through decode_jpeg(device='cuda')")
    except Skip as why:
        rows.skip("nvJPEG (torchvision)", str(why))
        return
    data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in files]
    for b in NVJPEG_BATCHES[q]:
        if time.time() >= deadline:
            rows.add("nvJPEG (torchvision)", f"batch {b}", None, "files/s", "not run: part time limit")
            continue

        def run(b: int = b) -> int:
            n = 0
            for i in range(0, len(data), b):
                imgs = io.decode_jpeg(data[i:i + b], device="cuda", mode=io.ImageReadMode.RGB)
                small = [torch.nn.functional.interpolate(im[None].float(), size=(size, size), mode="bilinear",
                                                         antialias=True) for im in imgs]
                n += len(small)
            torch.cuda.synchronize()
            return n

        try:
            rate = timed(run, SETTING_S[q], deadline)
        except Exception as exc:  # noqa: BLE001 - e.g. a torchvision built without nvJPEG
            rows.skip("nvJPEG (torchvision)", f"{type(exc).__name__}: {exc}")
            return
        rows.add("nvJPEG (torchvision)", f"batch {b}, bytes in RAM, decode + resize", round(rate, 1), "files/s",
                 f"{a.big_note}; full-size decode (no draft)")


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _blocks(n: int, step: int, deadline: float) -> Iterator[tuple[int, int]]:
    """Query blocks [start, stop) until ``n`` or the deadline (the rate then stands for the whole)."""
    for start in range(0, n, step):
        if time.time() >= deadline:
            return
        yield start, min(n, start + step)


def part_pairs(rows: Rows, a: argparse.Namespace, deadline: float) -> None:
    """All-pairs top-k over N × dim unit vectors: faiss GPU, torch CUDA (peer), faiss or numpy CPU (floor)."""
    from indexer.embedder import OnnxEmbedder
    from indexer.pairs import TOPK_START

    q = int(a.quick)
    dim = OnnxEmbedder(model_path(a.model), providers=["CPUExecutionProvider"]).dim
    n, k, rng = PAIRS_N[q], TOPK_START, np.random.default_rng(0)
    share = (deadline - time.time()) / 3  # GPU faiss, torch, CPU floor
    try:
        faiss = need("faiss")
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except Skip:
        faiss, gpus = None, 0
    x = _unit(rng, n, dim)
    if faiss is None or not gpus:
        rows.skip("faiss GPU", "needs faiss with GPUs (faiss-gpu); " +
                  ("faiss is not importable" if faiss is None else f"faiss {faiss.__version__} sees 0 GPUs"))
    else:
        index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
        t = time.perf_counter()
        index.add(x)
        done, stop = 0, time.time() + share
        for s, e in _blocks(n, 16384, stop):
            index.search(x[s:e], k)
            done = e
        secs = (time.perf_counter() - t) * n / max(done, 1)
        rows.add(f"faiss GPU × {gpus} (GpuIndexFlatIP)", f"N={n:,} × {dim}-d, top-{k}", round(secs, 2), "s all-pairs",
                 f"{done:,} of {n:,} queries timed" if done < n else "")
        del index
    torch = cuda_torch()
    if torch is None:
        rows.skip("torch CUDA matmul + topk", "needs torch with a CUDA device")
    else:
        for dtype, label in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            xt = torch.from_numpy(x).cuda().to(dtype)
            torch.cuda.synchronize()
            t = time.perf_counter()
            done, stop = 0, time.time() + share / 2
            for s, e in _blocks(n, 4096, stop):
                torch.topk(xt[s:e] @ xt.T, k, dim=1)
                done = e
            torch.cuda.synchronize()
            secs = (time.perf_counter() - t) * n / max(done, 1)
            rows.add(f"torch CUDA {label} matmul + topk (peer)", f"N={n:,} × {dim}-d, top-{k}", round(secs, 2),
                     "s all-pairs", f"{done:,} of {n:,} queries timed" if done < n else "")
            del xt
    m = min(PAIRS_CPU_N[q], n)
    y = x[:m]
    t = time.perf_counter()
    if faiss is not None:
        cpu = faiss.IndexFlatIP(dim)
        cpu.add(y)
        cpu.search(y, k)
        how = f"faiss {faiss.__version__} IndexFlatIP"
    else:
        for s in range(0, m, 4096):
            np.argpartition(-(y[s:s + 4096] @ y.T), k, axis=1)
        how = "numpy matmul + argpartition (no faiss here)"
    secs = time.perf_counter() - t
    cores = os.cpu_count() or 1
    rows.add(f"CPU, {cores} cores (floor)", f"N={m:,} × {dim}-d, top-{k}", round(secs, 3), "s all-pairs", how)
    rows.add(f"CPU, {cores} cores (floor)", f"N={n:,} scaled by (N/{m:,})²", round(secs * (n / m) ** 2, 1),
             "s all-pairs", "estimate from the row above, not measured")


def _library_pixels(args: tuple[str, int]) -> np.ndarray:
    from indexer.config import Settings
    from indexer.decode import load_image

    path, size = args
    return load_image(Path(path), max_pixels=Settings().max_pixels, size=size).pixels


def part_fp16(rows: Rows, a: argparse.Namespace, deadline: float) -> None:
    """fp32 vs fp16 embeddings of the public eval library: per photo and per pair, and threshold flips."""
    need("onnxconverter_common", "workers.gpu.fp16_model converts the model with it")
    need("celery", "workers.gpu imports it")
    from indexer.embedder import OnnxEmbedder, available_providers
    from workers.gpu import fp16_model

    lib = a.library or a.work / "eval-lib"
    if not (lib / "truth.json").exists():
        script = SHARED / "eval" / "make_library.py"
        if not script.exists():
            raise Skip(f"no eval library: pass --library DIR (a make_library.py output) or put {script} beside")
        subprocess.run([sys.executable, str(script), str(lib)], check=True, stdout=subprocess.DEVNULL)
    model = model_path(a.model)
    provider = "CUDAExecutionProvider" if "CUDAExecutionProvider" in available_providers() else "CPUExecutionProvider"
    e32 = OnnxEmbedder(model, providers=[provider])
    path, weights = fp16_model(model, a.work / "models")
    e16 = OnnxEmbedder(path, providers=[provider], weights=weights)
    files = sorted(str(p) for p in (lib / "library").rglob("*") if p.is_file())
    if FP16_FILES[int(a.quick)]:
        files = files[:FP16_FILES[int(a.quick)]]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        px = np.stack(list(pool.map(_library_pixels, [(f, e32.spec.input_size) for f in files], chunksize=8)))
    b = 64
    v32 = np.concatenate([e32.embed(px[i:i + b]) for i in range(0, len(px), b)])
    v16 = np.concatenate([e16.embed(px[i:i + b]) for i in range(0, len(px), b)])
    v32 /= np.linalg.norm(v32, axis=1, keepdims=True)  # as exported both are unit length to ~1e-3: compare
    v16 /= np.linalg.norm(v16, axis=1, keepdims=True)  # directions, not fp16's rounding of the norm
    own = 1 - (v32 * v16).sum(1)
    s32, s16 = v32 @ v32.T, v16 @ v16.T
    iu = np.triu_indices(len(files), 1)
    diff = np.abs(s32 - s16)[iu]
    thr = e32.spec.threshold
    flips = int(((s32[iu] >= thr) != (s16[iu] >= thr)).sum())
    dev = f"onnxruntime {provider.removesuffix('ExecutionProvider')}"
    note = f"{len(files)} files of {lib.name}"
    rows.add(dev, "1 - cos(fp32, fp16) per photo, mean", float(f"{own.mean():.3g}"), "cosine", note)
    rows.add(dev, "1 - cos(fp32, fp16) per photo, max", float(f"{own.max():.3g}"), "cosine", note)
    rows.add(dev, "change of a pair's cosine, max over all pairs", float(f"{diff.max():.3g}"), "cosine",
             f"{note}, {len(diff):,} pairs")
    rows.add(dev, f"pairs crossing the threshold {thr}", flips, "pairs", f"{note}, {len(diff):,} pairs")


def part_ingest(rows: Rows, a: argparse.Namespace, deadline: float) -> None:
    """A default in-process ingest of the 12 MP set (Index.ingest), with the providers present."""
    try:
        from indexer.config import Settings
        from indexer.index import Index
    except ImportError as exc:
        raise Skip(f"needs the project's base install (indexer.index): {exc}") from exc
    data = a.work / "ingest-data"
    shutil.rmtree(data, ignore_errors=True)
    kw = {"model_path": a.model} if a.model else {}
    with Index(Settings(data_dir=data, **kw)) as index:
        providers = ",".join(p.removesuffix("ExecutionProvider") for p in index.embedder.providers)
        s = index.ingest([str(a.big)])
    t = s.timings
    rows.add(f"Index.ingest [{providers}]", f"default settings, batch {Settings().batch_size}",
             round(s.indexed / s.seconds, 2), "files/s",
             f"{s.indexed} files, {s.seconds:.1f} s: decode wait {t.decode:.1f}, embed {t.embed:.1f}, "
             f"link {t.link:.1f} (verify {t.verify:.1f}); {a.big_note}")


PART_FNS = {"embed": part_embed, "decode": part_decode, "pairs": part_pairs, "fp16": part_fp16,
            "ingest": part_ingest}


# ---------------------------------------------------------------------------------------------------- driver


def machine() -> dict:
    """What ran it: cores, GPU, and the versions of what each part can use."""
    info: dict[str, object] = {"cpu_cores": os.cpu_count(), "python": platform.python_version(),
                               "platform": platform.platform()}
    for mod in ("onnxruntime", "faiss", "torch", "torchvision", "onnxconverter_common"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            info[mod] = f"missing ({type(exc).__name__})"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception as exc:  # noqa: BLE001
        info["onnxruntime_providers"] = f"unknown ({type(exc).__name__})"
    torch = cuda_torch()
    info["gpu"] = torch.cuda.get_device_name(0) if torch is not None else None
    return info


def child(a: argparse.Namespace) -> int:
    """Run one part (the ``--child`` process), its rows into WORK/rows-PART.jsonl."""
    import warnings

    warnings.filterwarnings("ignore")  # onnxconverter-common warns per truncated weight
    rows = Rows(a.work / f"rows-{a.child}.jsonl", a.child)
    try:
        PART_FNS[a.child](rows, a, time.time() + a.part_timeout * 0.8)
    except Skip as why:
        rows.skip("-", str(why))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench-gpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check that every part runs, not figures")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--part-timeout", type=float, default=150.0, help="seconds each part may run before it is killed")
    ap.add_argument("--library", type=Path, default=None, help="a make_library.py output for fp16 (default WORK/eval-lib)")
    ap.add_argument("--model", type=Path, default=None, help="ONNX model (default: Settings().model_path)")
    ap.add_argument("--big", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--big-note", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=PARTS, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.child:
        return child(a)
    parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    started = time.time()
    big, note = None, ""
    if {"decode", "ingest"} & set(parts):
        t = time.perf_counter()
        big, note = big_set(a.work, BIG_FILES[int(a.quick)], a.quick)
        print(f"prepared {note} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    status: dict[str, str] = {}
    for part in parts:
        out = a.work / f"rows-{part}.jsonl"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, "--work", str(a.work),
               "--part-timeout", str(a.part_timeout)]
        cmd += ["--quick"] if a.quick else []
        cmd += ["--library", str(a.library)] if a.library else []
        cmd += ["--model", str(a.model)] if a.model else []
        cmd += ["--big", str(big), "--big-note", note] if big else []
        t = time.perf_counter()
        with (a.work / f"log-{part}.txt").open("w") as log:
            try:
                rc = subprocess.run(cmd, check=False, stdout=log, stderr=subprocess.STDOUT, timeout=a.part_timeout).returncode
                status[part] = "ok" if rc == 0 else f"failed (exit {rc}; see {log.name})"
            except subprocess.TimeoutExpired:
                status[part] = f"killed at its {a.part_timeout:.0f} s limit (rows so far kept)"
        print(f"part {part}: {status[part]} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    rows = []
    for part in parts:
        out = a.work / f"rows-{part}.jsonl"
        got = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        if status[part] != "ok":
            tail = (a.work / f"log-{part}.txt").read_text().strip().splitlines()[-1:] or [""]
            got.append({"part": part, "device": "-", "setting": "-", "figure": None, "unit": "-",
                        "note": f"{status[part]}: {tail[0][:200]}"})
        rows += got
    info = machine()
    print(f"\n## bench/gpu.py{' --quick' if a.quick else ''} ({info['cpu_cores']} cores, GPU: {info['gpu'] or 'none'})\n")
    print("| part | device / provider | setting | figure | unit | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        fig = "" if r["figure"] is None else f"{r['figure']:,}" if isinstance(r["figure"], (int, float)) else r["figure"]
        print(f"| {r['part']} | {r['device']} | {r['setting']} | {fig} | {r['unit']} | {r['note']} |")
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": time.time() - started,
              "quick": a.quick, "machine": info, "parts": status, "rows": rows,
              "git": _git_head()}
    (a.work / "gpu.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {a.work / 'gpu.json'}")
    return 0


def _git_head() -> str | None:
    """The checked-out commit, when git is there to say."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
