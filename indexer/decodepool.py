"""Decode photos in worker processes so the embedder never waits on one core.

Workers read each file once, hash it and decode it; results come back in submission order with a
bounded number in flight, so memory stays flat on a million-file run.

A worker that dies (the kernel's OOM killer, a codec segfault, the per-file CPU limit) breaks the
whole process pool: every unfinished file fails with it, and which one killed it is unknown. The
pool is then restarted and those files are decoded again one at a time in a single-worker process,
so the culprit is the one whose process dies; it comes back as a failure with reason
``decoder crashed`` and every other file decodes normally. Small runs decode in that single worker
too, not in the caller's process, which a crashing decoder would take down on every rerun. Only
``workers=1`` decodes in the caller's process (the Celery workers' choice: their pool processes are
daemonic and may not start children), one file at a time through ``decode_here``, under the same CPU
limit: past it the process itself is stopped. The catalog then names the culprit on the next try
(``Index._decode_here`` counts decodes begun and not finished per photo).
"""
from __future__ import annotations

import functools
import io
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from indexer import features, keeper, margins, verify
from indexer.decode import load_image, read_file
from indexer.errors import DupesiftError, ImageError

SERIAL_BELOW = 32  # fewer files than this decode one by one in a single worker: starting a pool costs more
CPU_SECONDS = 300.0  # per file, in a worker: a decoder that burns 5 CPU-minutes on one photo is stuck
CRASHED = "decoder crashed"
CRASH_LIMIT = 2  # decodes in the caller's process that died on one file before it is failed unread
MAX_CRASHES_IN_A_ROW = 8  # isolated files dying one after another: the machine, not the files
EXIT_STATUS_WAIT = 5.0  # seconds to wait for a dead worker's exit status, to say what stopped it

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeResult:
    path: str
    ok: bool
    size: int = 0
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    pixels: np.ndarray | None = None
    reason: str | None = None
    message: str | None = None
    camera: bool = False
    features: bytes | None = None  # indexer.features.pack of the photo, for the link step
    attributes: keeper.Attributes | None = None  # what it holds of the original picture, for the keeper rule


def photo_features(rgb: Image.Image, overview: margins.Overview | None = None) -> bytes | None:
    """The packed link features of a decoded photo; None (logged) when they cannot be computed: the link step
    then reads the file for them."""
    try:
        return features.pack(features.extract(rgb, overview))
    except Exception:
        log.warning("no link features for a photo", exc_info=True)
        return None


def photo_attributes(rgb: Image.Image, overview: margins.Overview | None = None) -> keeper.Attributes | None:
    """The keeper evidence of a decoded photo; None (logged) when it cannot be measured: the keeper rule then
    goes by its pixels."""
    try:
        return keeper.measure(rgb, overview=overview)
    except Exception:
        log.warning("no keeper evidence for a photo", exc_info=True)
        return None


def photo_extra(rgb: Image.Image) -> tuple[bytes | None, keeper.Attributes | None]:
    """What the decode workers compute of a decoded photo besides the model pixels (its margins once, for both)."""
    try:
        overview = margins.look(rgb)
    except Exception:
        log.warning("no overview of a photo", exc_info=True)
        overview = None
    return photo_features(rgb, overview), photo_attributes(rgb, overview)


def decode_file(path: str, max_pixels: int, max_bytes: int, size: int) -> DecodeResult:
    """Read, hash and decode one file (with its link features); every failure becomes a DecodeResult with a
    reason."""
    try:
        data, facts = read_file(Path(path), max_bytes)
    except ImageError as exc:
        return DecodeResult(path, False, reason=exc.reason, message=str(exc))
    try:
        d = load_image(data, max_pixels=max_pixels, size=size, extra=photo_extra, extra_side=verify.SIDE)
    except ImageError as exc:
        return DecodeResult(path, False, size=facts.size, sha256=facts.sha256, reason=exc.reason, message=str(exc))
    except MemoryError:
        return DecodeResult(path, False, size=facts.size, sha256=facts.sha256, reason="too-large",
                            message="ran out of memory decoding this file")
    feats, attrs = d.extra  # type: ignore[misc]
    return DecodeResult(path, True, facts.size, facts.sha256, d.width, d.height, d.format, d.pixels, camera=d.camera,
                        features=feats, attributes=_with_file_facts(attrs, data, d.taken))


def measure_file(path: str, max_pixels: int, max_bytes: int, size: int) -> tuple[str | None, keeper.Attributes | None]:
    """(content hash, keeper evidence) of one file, decoded and measured as ``decode_file`` does; (None, None)
    when it cannot be read or decoded now."""
    try:
        data, facts = read_file(Path(path), max_bytes)
        d = load_image(data, max_pixels=max_pixels, size=size, extra=photo_attributes, extra_side=verify.SIDE)
    except (ImageError, MemoryError):
        return None, None
    return facts.sha256, _with_file_facts(d.extra, data, d.taken)  # type: ignore[arg-type]


def _with_file_facts(attrs: keeper.Attributes | None, data: bytes, taken: str | None) -> keeper.Attributes | None:
    """The keeper evidence with what the file says beside its pixels: the JPEG quality read from its tables and
    the camera's capture time."""
    return replace(attrs, jpeg_quality=keeper.jpeg_quality(data), taken=taken) if attrs is not None else None


def _worker_init() -> None:
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # the CPU limit's timer must kill, not be caught
    import cv2

    cv2.setNumThreads(1)  # the pool runs a process per core already: OpenCV's own threads would only contend


WARM_SIZE = (640, 480)  # the synthetic photo a process decodes once before its first file under the limit


@functools.cache
def _warm(size: int) -> None:
    """Decode, measure and extract features of one synthetic photo, once per process: the first file must not
    be charged the process's one-time costs (lazy imports, first allocations) under the per-file limit."""
    colours = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(colours).resize(WARM_SIZE, Image.Resampling.BICUBIC).save(buf, "JPEG")
    load_image(buf.getvalue(), max_pixels=WARM_SIZE[0] * WARM_SIZE[1], size=size, extra=photo_extra,
               extra_side=verify.SIDE)


def _decode_limited(path: str, max_pixels: int, max_bytes: int, size: int, cpu_seconds: float) -> DecodeResult:
    """``decode_file`` in a worker under a CPU-time limit: past it the kernel kills the process (SIGPROF)."""
    if cpu_seconds > 0:
        _warm(size)
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        return decode_file(path, max_pixels, max_bytes, size)
    finally:
        if cpu_seconds > 0:
            signal.setitimer(signal.ITIMER_PROF, 0)


def _death(executor: ProcessPoolExecutor, cpu_seconds: float) -> str:
    """Why the (single) worker of a broken pool died, for the failure message."""
    procs = list((getattr(executor, "_processes", None) or {}).values())
    # A dead worker's pipe closes, breaking the pool, a moment before the kernel has its exit status.
    deadline = time.monotonic() + EXIT_STATUS_WAIT
    while any(p.exitcode is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.005)
    codes = [p.exitcode for p in procs if p.exitcode]
    code = codes[0] if codes else None
    if code is None or code > 0:
        return "the decoder process died on this file"
    sig = -code
    if sig == signal.SIGPROF:
        return f"the decoder used over {cpu_seconds:g} s of CPU time on this file and was stopped"
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    hint = " (likely out of memory)" if sig == signal.SIGKILL else ""
    return f"the decoder process was killed by {name}{hint} on this file"


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class DecodePool:
    """``with DecodePool(...) as pool: for r in pool.map(paths): ...``"""

    def __init__(self, *, max_pixels: int, max_bytes: int, size: int, workers: int = 0,
                 cpu_seconds: float = CPU_SECONDS) -> None:
        self.args = (max_pixels, max_bytes, size)
        self.cpu_seconds = float(cpu_seconds)  # per file in a worker; 0 = no limit
        self.workers = workers or default_workers()
        self._executor: ProcessPoolExecutor | None = None
        self._solo: ProcessPoolExecutor | None = None  # one worker, for isolating a crashing file
        self.restarts = 0  # pools lost to a dying worker
        self._crashes = 0  # isolated files in a row whose process died

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_executor(self, workers: int) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds gRPC channels and onnxruntime threads that must not be forked
        return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = self._new_executor(self.workers)
        return self._executor

    def _submit(self, path: str) -> Future:
        return self._pool().submit(_decode_limited, path, *self.args, self.cpu_seconds)

    def map(self, paths: Iterable[str], count: int | None = None) -> Iterator[DecodeResult]:
        """Decode results in the order of ``paths``; a file that kills its worker fails as ``decoder crashed``."""
        paths = list(paths)
        if self.inline:
            for p in paths:
                yield self.decode_here(p)
            return
        if len(paths) < SERIAL_BELOW:
            for p in paths:
                yield self._isolated(p)
            return
        window = self.workers * 16
        inflight: deque[tuple[str, Future]] = deque()
        it = iter(paths)
        while True:
            while len(inflight) < window and (nxt := next(it, None)) is not None:
                try:
                    inflight.append((nxt, self._submit(nxt)))
                except BrokenProcessPool:  # broke since the last result: its futures fail too, handled below
                    inflight.append((nxt, _broken_future()))
                    break
            if not inflight:
                return
            path, fut = inflight.popleft()
            try:
                yield fut.result()
                continue
            except BrokenProcessPool:
                pass
            # Every file still in flight went down with the pool; those that finished before it kept their result.
            lost = [(path, fut), *inflight]
            inflight.clear()
            self._discard_pool()
            for p, f in lost:
                yield f.result() if not f.cancelled() and f.exception() is None else self._isolated(p)

    @property
    def inline(self) -> bool:
        """Whether files decode in this process (``workers=1``), where a crash takes the caller down."""
        return self.workers <= 1

    def decode_here(self, path: str) -> DecodeResult:
        """Decode one file in this process, under the CPU limit when this is the main thread and SIGPROF
        is not taken (a profiler): past the limit the kernel stops this process, as it would a worker."""
        if (self.cpu_seconds > 0 and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGPROF) == signal.SIG_DFL):
            return _decode_limited(path, *self.args, self.cpu_seconds)
        return decode_file(path, *self.args)

    def _isolated(self, path: str) -> DecodeResult:
        """Decode one file alone in a single-worker process; if that process dies, the file is the culprit."""
        if self._solo is None:
            self._solo = self._new_executor(1)
        try:
            result = self._solo.submit(_decode_limited, path, *self.args, self.cpu_seconds).result()
            self._crashes = 0
            return result
        except BrokenProcessPool:
            why = _death(self._solo, self.cpu_seconds)
            self._solo.shutdown(wait=True)
            self._solo = None
            self._crashes += 1
            if self._crashes >= MAX_CRASHES_IN_A_ROW:
                raise DupesiftError(
                    f"decode worker processes died on {self._crashes} files in a row (last: {path}: {why}); "
                    "is the machine out of memory? Lower DUPESIFT_DECODE_WORKERS and run again") from None
            return DecodeResult(path, False, reason=CRASHED, message=why)

    def _discard_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            self.restarts += 1

    def close(self) -> None:
        for ex in (self._executor, self._solo):
            if ex is not None:
                ex.shutdown(wait=True, cancel_futures=True)
        self._executor = self._solo = None


def _broken_future() -> Future:
    f: Future = Future()
    f.set_exception(BrokenProcessPool("the decode pool broke"))
    return f
