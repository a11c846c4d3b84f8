"""Batch embedding: decode -> embed -> store, one committed batch at a time.

A photo's vector is upserted under its id before the catalog marks it ``indexed`` (so a killed run repeats at
most one batch, under the same ids). A byte-identical copy of a photo already indexed with this model reuses
its twin's vector (no model work) and is paired with it as ``exact``. A file that cannot be decoded fails
alone, with a reason; the rest of its batch is indexed.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sqlalchemy import func, select, update

from indexer import featurestore, keeper
from indexer.batching import chunks
from indexer.catalog import Image, ImageStatus
from indexer.catalog.models import utcnow
from indexer.catalog.queries import paths_of, rows_in
from indexer.decodepool import CRASH_LIMIT, CRASHED, DecodePool, DecodeResult
from indexer.fsnames import to_text
from indexer.pairstore import delete_pairs_of, store_exact_pairs
from indexer.parts import Parts
from indexer.progress import Progress, Quiet
from indexer.summary import IngestSummary

OnBatch = Callable[[int, int], None]  # (photos processed so far, of which failed): after each stored batch


def embed_batches(ix: Parts, image_ids: list[int], summary: IngestSummary, progress: Progress | None = None,
                  on_batch: OnBatch | None = None) -> tuple[int, int]:
    """Decode, embed and store the given (pending) photos; returns (indexed, failed)."""
    progress = progress or Quiet()
    if not image_ids:
        return 0, 0
    st = ix.settings
    with ix.catalog.session() as s:
        paths = paths_of(s, image_ids)
    ids = [i for i in image_ids if i in paths]
    done = failed = 0
    with DecodePool(max_pixels=st.max_pixels, max_bytes=st.max_file_bytes, size=ix.spec.input_size,
                    workers=st.decode_workers, cpu_seconds=st.decode_cpu_seconds) as pool:
        results = None if pool.inline else pool.map(paths[i] for i in ids)
        for batch_ids in chunks(ids, st.batch_size):
            t = time.perf_counter()
            if results is None:
                batch = _decode_here(ix, pool, batch_ids, paths)
            else:
                batch = [next(results) for _ in batch_ids]
            summary.timings.decode += time.perf_counter() - t
            n_ok, n_bad = _store_batch(ix, list(zip(batch_ids, batch, strict=True)), summary)
            done, failed = done + n_ok, failed + n_bad
            progress.advance(done + failed, failed)
            if on_batch is not None:
                on_batch(done + failed, failed)
    return done, failed


def _decode_here(ix: Parts, pool: DecodePool, ids: list[int], paths: dict[int, str]) -> list[DecodeResult]:
    """Decode a batch in this process (``decode_workers=1``), so that a file that kills the process
    is found on the next try instead of killing it on every redelivery.

    Each photo's ``decode_crashes`` counts decodes begun and never finished. A batch without any is
    marked once as a whole (one write); a batch with some (a process died on it) is decoded one
    photo at a time, each marked before and unmarked after, so only the culprit's count keeps
    rising; at CRASH_LIMIT it fails as "decoder crashed" without being decoded again. The marks
    are cleared when the batch is stored."""
    with ix.catalog.session() as s:
        marks = dict(s.execute(select(Image.id, Image.decode_crashes).where(Image.id.in_(ids))).all())
    if not any(marks.values()):
        _mark_decoding(ix, ids, 1)
        return [pool.decode_here(paths[i]) for i in ids]
    out = []
    for i in ids:
        if marks.get(i, 0) >= CRASH_LIMIT:
            out.append(DecodeResult(paths[i], False, reason=CRASHED, message=(
                f"the process decoding this file died {marks[i]} times before finishing it (a decoder "
                "crash, out of memory or over DUPESIFT_DECODE_CPU_SECONDS); it is not decoded again "
                "until it changes")))
            continue
        _mark_decoding(ix, [i], 1)
        out.append(pool.decode_here(paths[i]))
        _mark_decoding(ix, [i], -1)
    return out


def _mark_decoding(ix: Parts, ids: list[int], step: int) -> None:
    with ix.catalog.session() as s:
        s.execute(update(Image).where(Image.id.in_(ids)).values(decode_crashes=Image.decode_crashes + step))


def _store_batch(ix: Parts, batch: list[tuple[int, DecodeResult]], summary: IngestSummary) -> tuple[int, int]:
    tm = summary.timings
    ok = [(i, r) for i, r in batch if r.ok]
    bad = [(i, r) for i, r in batch if not r.ok]
    model = ix.spec.model_id
    with ix.catalog.session() as s:
        # Byte-identical to a photo already indexed with this model (or earlier in this batch)?
        twins: dict[str, int] = dict(rows_in(
            s, select(Image.sha256, func.min(Image.id)).where(
                Image.status == ImageStatus.indexed, Image.model_id == model,
                Image.id.not_in([i for i, _ in ok])).group_by(Image.sha256),
            Image.sha256, {r.sha256 for _, r in ok}))
        to_embed, copies = [], []
        for i, r in ok:
            if r.sha256 in twins:
                copies.append((i, r, twins[r.sha256]))
            else:
                twins[r.sha256] = i
                to_embed.append((i, r))
        t = time.perf_counter()
        vecs = ix.embedder.embed(np.stack([r.pixels for _, r in to_embed])) if to_embed else None
        tm.embed += time.perf_counter() - t
        t = time.perf_counter()
        by_id = {i: v for (i, _), v in zip(to_embed, vecs, strict=True)} if vecs is not None else {}
        by_id.update(ix.store.get([t_id for _, _, t_id in copies if t_id not in by_id]))
        ids_out, vec_out, exact_pairs = [], [], []
        for i, _ in to_embed:
            ids_out.append(i)
            vec_out.append(by_id[i])
        for i, r, twin in copies:
            ids_out.append(i)
            if twin in by_id:
                vec_out.append(by_id[twin])
                exact_pairs.append((min(i, twin), max(i, twin)))
            else:  # the twin's vector vanished from the store: embed this one after all
                vec_out.append(ix.embedder.embed(r.pixels[None])[0])
        if ids_out:
            ix.store.upsert(ids_out, np.stack(vec_out))
        tm.store += time.perf_counter() - t
        delete_pairs_of(s, [i for i, _ in ok])  # content may have changed: old pairs no longer hold
        featurestore.save(s, [(i, r.sha256, r.features) for i, r in ok])
        now = utcnow()
        if ok:
            s.execute(update(Image), [
                {"id": i, "status": ImageStatus.indexed, "bytes": r.size, "sha256": r.sha256, "width": r.width,
                     "height": r.height, "format": r.format, "camera_exif": r.camera, "model_id": model, "linked": False,
                     "indexed_at": now, "decode_crashes": 0,
                     "error_reason": None, "error_message": None, **keeper.columns(r.attributes)} for i, r in ok])
        if bad:
            s.execute(update(Image), [
                {"id": i, "status": ImageStatus.failed, "sha256": r.sha256, "error_reason": r.reason,
                     "error_message": r.message, "linked": True, "model_id": None,
                     "decode_crashes": CRASH_LIMIT if r.reason == CRASHED else 0} for i, r in bad])
            ix.store.delete([i for i, _ in bad])
            delete_pairs_of(s, [i for i, _ in bad])
    if exact_pairs:
        store_exact_pairs(ix, exact_pairs)
    summary.indexed += len(ok)
    summary.exact_copies += len(copies)
    summary.failed.extend({"path": to_text(r.path), "reason": r.reason, "message": r.message} for _, r in bad)
    return len(ok), len(bad)
