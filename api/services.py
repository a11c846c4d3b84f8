"""What the JSON routes and the web pages share: groups with their members and pairs, library paths, jobs,
and the in-process ingest runner. Uploads are in ``api/uploads.py``, decisions on groups in ``api/decisions.py``."""
from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Collection
from itertools import combinations
from pathlib import Path

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.schemas import Failure, Group, GroupDetail, GroupsResponse, JobOut, Member, Operation, PairSimilarity
from indexer import browse, featurestore, grouping, ingest, keeper, resolution
from indexer.catalog.models import DupGroup, Image, ImageStatus, Job, Pair, Root, utcnow
from indexer.catalog.queries import under_prefix
from indexer.fsnames import from_text, to_text
from indexer.index import Index
from indexer.jobs import create_job, set_status
from indexer.scan import under_root
from indexer.views import GroupView, MemberView, member_views

PAIRWISE_MAX = 40  # members above which only stored pairs are listed


# -- groups --------------------------------------------------------------------------------------
def member_out(view: MemberView, keeper_id: int | None, quarantine: Path) -> Member:
    return Member(**view.model_dump(), is_keeper=view.id == keeper_id,
                  quarantined=resolution.in_quarantine(view.path, quarantine),
                  thumbnail_url=f"/images/{view.id}/thumbnail", file_url=f"/images/{view.id}/file")


def members_out(keeper_id: int | None, members: list[Image], quarantine: Path, pages: Collection[int] = ()
                ) -> tuple[list[Member], dict[str, int]]:
    """Members keeper first, with the keeper evidence, and the member holding the best of each attribute;
    ``pages``: the members that are pages (``featurestore.pages``)."""
    views, best = member_views(keeper_id, members, pages)
    return [member_out(v, keeper_id, quarantine) for v in views], best


def members_of(s: Session, gids: list[int]) -> dict[int, list[Image]]:
    out: dict[int, list[Image]] = {}
    if gids:
        for img in s.scalars(select(Image).where(Image.group_id.in_(gids)).order_by(Image.id)):
            out.setdefault(img.group_id, []).append(img)
    return out


def group_page(index: Index, s: Session, **kw) -> GroupsResponse:
    page = browse.list_groups(s, previews=0, **kw)
    members = members_of(s, [g["id"] for g in page.groups])
    q = index.settings.quarantine_dir
    pages = featurestore.pages(s, [m.id for ms in members.values() for m in ms])
    groups = []
    for g in page.groups:
        outs, best = members_out(g["keeper"], members.get(g["id"], []), q, pages)
        groups.append(Group(**{k: g[k] for k in GroupView.model_fields if k != "best"}, members=outs, best=best))
    return GroupsResponse(groups=groups, count=len(groups), total=page.total, next_cursor=page.next_cursor)


def get_group_or_404(s: Session, group_id: int) -> DupGroup:
    g = s.get(DupGroup, group_id)
    if g is None:
        raise ApiError(404, f"no duplicate group with id {group_id}")
    return g


def group_detail(index: Index, s: Session, group_id: int) -> GroupDetail:
    g = get_group_or_404(s, group_id)
    members = members_of(s, [group_id]).get(group_id, [])
    ids = [m.id for m in members]
    touching = s.execute(select(Pair.a_id, Pair.b_id, Pair.similarity, Pair.kind, Pair.cover).where(
        or_(Pair.a_id.in_(ids), Pair.b_id.in_(ids)))).all()  # the group's own pairs and those reaching out of it
    inside = set(ids)
    stored = {(a, b): (sim, kind, cover) for a, b, sim, kind, cover in touching if a in inside and b in inside}
    declined = resolution.declined_pairs(s, ids) if ids else set()
    checked = [p for p, (_, kind, cover) in stored.items() if not grouping.look_alike(kind, cover)]
    bridge = set(grouping.bridges(ids, checked)) if len(ids) <= grouping.MAX_BULK else set()
    pairs = []
    if len(ids) <= PAIRWISE_MAX:
        vecs = index.store.get(ids)
        for a, b in combinations(sorted(ids), 2):
            if (a, b) in stored:
                sim = stored[(a, b)][0]
            elif a in vecs and b in vecs:
                sim = float(np.clip(vecs[a] @ vecs[b], -1, 1))
            else:
                continue
            pairs.append(PairSimilarity(a=a, b=b, similarity=round(float(sim), 6), linked=(a, b) in stored,
                                        kind=stored[(a, b)][1] if (a, b) in stored else None,
                                        declined=(a, b) in declined, bridge=(a, b) in bridge))
    else:
        pairs = [PairSimilarity(a=a, b=b, similarity=round(sim, 6), linked=True, kind=kind, declined=False)
                 for (a, b), (sim, kind, _) in sorted(stored.items())]
    q = index.settings.quarantine_dir
    outs, best = members_out(g.keeper_id, members, q, featurestore.pages(s, ids))
    times_of = grouping.group_times(s, {x for a, b, *_ in touching for x in (a, b)} | set(ids))
    links = grouping.same_moment(ids, [(a, b, kind, cover) for a, b, _, kind, cover in touching], times_of)
    reaching = grouping.reaching_out(ids, links)
    holding = grouping.may_hold_another(s, ids, links, g.keeper_id) if reaching else []
    also = set(_part_keepers(g.keeper_id, outs, checked, bridge)) | set(holding)
    if g.keeper_id in holding and (rest := [m for m in outs if m.id not in holding]):
        also.add(max(rest, key=lambda m: (m.keeper_score or 0.0, -m.id)).id)  # the keeper holds more than this picture
    also = sorted(also - {g.keeper_id})
    return GroupDetail(**GroupView.fields_of(g), members=outs, best=best, keeper_rule=keeper.RULE,
                       threshold=index.threshold, pairs=pairs, also_keep=also, reaching_out=reaching,
                       may_hold_another=holding,
                       history=[Operation(**h) for h in resolution.history(q, group_id)])


def _part_keepers(keeper_id: int | None, outs: list[Member], checked: list[tuple[int, int]],
                  bridge: set[tuple[int, int]]) -> list[int]:
    """Where one link alone joins parts of a group (``grouping.bridges``): the best photo (keeper score) of each
    part the keeper is not in, so that keeping the ticked photos keeps one of each picture."""
    if not bridge:
        return []
    score = {m.id: m.keeper_score or 0.0 for m in outs}
    parts = grouping.components(list(score), [p for p in checked if p not in bridge])
    return sorted(max(part, key=lambda i: (score[i], -i)) for part in parts if keeper_id not in part)


# -- ingest --------------------------------------------------------------------------------------
def library_roots(index: Index) -> list[str]:
    configured = [r for r in index.settings.roots.split(":") if r.strip()]
    if configured:
        return [os.path.realpath(os.path.expanduser(r)) for r in configured]
    with index.catalog.session() as s:
        return [os.path.realpath(p) for p in s.scalars(select(Root.path))]


def check_paths(paths: list[str], roots: list[str]) -> list[str]:
    """Real paths of ``paths``, each inside a library root; 403 for anything else (``..``, symlinks out)."""
    if not roots:
        raise ApiError(403, "no library roots are configured: set DUPESIFT_ROOTS (':'-separated folders)")
    out = []
    for p in paths:
        p = from_text(p)  # a name shown with its undecodable bytes escaped (fsnames) names the file it shows
        if not p or "\x00" in p or not os.path.isabs(p):
            raise ApiError(400, f"paths must be absolute: {p!r}")
        if ".." in Path(p).parts:
            raise ApiError(403, f"'..' is not allowed in paths: {p}")
        real = os.path.realpath(p)
        if not any(under_root(real, r) for r in roots):
            raise ApiError(403, f"{p} is outside the library roots ({', '.join(roots)})")
        if not os.path.exists(real):
            raise ApiError(404, f"no such file or folder: {p}")
        out.append(real)
    return out


class IngestRunner:
    """One ingest at a time, on a background thread of the server process (which holds Milvus Lite); with a
    broker (``DUPESIFT_BROKER_URL``) the job is queued for the workers instead."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, paths: list[str], *, prune_empty: bool = False) -> str:
        job_id = str(uuid.uuid4())
        if self.index.settings.broker_url:  # the distributed path: the workers scan, embed and link
            from workers.client import queue_job

            self._queue_row(job_id, paths, prune_empty)
            queue_job(job_id)
            return job_id
        if not self._lock.acquire(blocking=False):
            raise ApiError(409, "an ingest is already running; wait for it (GET /jobs) and try again")
        try:
            self._queue_row(job_id, paths, prune_empty)
            self._thread = threading.Thread(target=self._run, args=(paths, job_id, prune_empty),
                                            name=f"ingest-{job_id[:8]}", daemon=True)
            self._thread.start()
        except BaseException:
            self._lock.release()
            raise
        return job_id

    def _queue_row(self, job_id: str, paths: list[str], prune_empty: bool) -> None:
        create_job(self.index.catalog, "ingest", {"paths": paths, "prune_empty": prune_empty}, job_id)

    def _run(self, paths: list[str], job_id: str, prune_empty: bool) -> None:
        try:
            ingest.run(self.index, paths, job_id=job_id, prune_empty=prune_empty)
        except BaseException as exc:  # noqa: BLE001 - recorded on the job row (unless closed); the server keeps serving
            set_status(self.index.catalog, job_id, "failed", str(exc))
        finally:
            self._lock.release()

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    @property
    def busy(self) -> bool:
        return self._lock.locked()


def job_out(s: Session, job: Job, failures: int = 50) -> JobOut:
    rate = eta = None
    if job.started_at is not None and job.done:
        end = job.finished_at or utcnow()
        start = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=utcnow().tzinfo)
        end = end if end.tzinfo else end.replace(tzinfo=start.tzinfo)
        secs = max((end - start).total_seconds(), 1e-3)
        rate = round(job.done / secs, 2)
        if job.status in ("running", "queued") and job.total > job.done:
            eta = round((job.total - job.done) / rate, 1) if rate else None
    fails = [Failure(**f) for f in ((job.summary or {}).get("unreadable") or (job.params or {}).get("unreadable")
                                    or [])][:failures]
    if job.failed or job.status == "done":
        paths = (job.params or {}).get("paths", [])
        conds = [or_(Image.path == p, under_prefix(Image.path, p.rstrip(os.sep) + os.sep)) for p in paths]
        if conds:
            fails += [Failure(path=to_text(p), reason=r, message=m) for p, r, m in s.execute(
                select(Image.path, Image.error_reason, Image.error_message)
                .where(Image.status == ImageStatus.failed, or_(*conds)).limit(failures))]

    def iso(d: object) -> str | None:
        return d.isoformat() if d else None  # type: ignore[attr-defined]

    return JobOut(id=job.id, kind=job.kind, status=job.status, params=job.params or {}, total=job.total,
                  done=job.done, failed=job.failed, rate=rate, eta_seconds=eta, message=job.message,
                  summary=job.summary, phases=job.phases, created_at=iso(job.created_at), started_at=iso(job.started_at),
                  finished_at=iso(job.finished_at), failures=fails)
