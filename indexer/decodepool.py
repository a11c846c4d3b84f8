"""Decode photos in worker processes so the embedder never waits on one core.

Workers read each file once, hash it and decode it; results come back in submission order with a
bounded number in flight, so memory stays flat on a million-file run.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.decode import load_image, read_file
from indexer.errors import ImageError

INLINE_BELOW = 32  # fewer files than this decode in-process: starting workers costs more


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


def decode_file(path: str, max_pixels: int, max_bytes: int, size: int) -> DecodeResult:
    """Read, hash and decode one file; every failure becomes a DecodeResult with a reason."""
    try:
        data, facts = read_file(Path(path), max_bytes)
    except ImageError as exc:
        return DecodeResult(path, False, reason=exc.reason, message=str(exc))
    try:
        d = load_image(data, max_pixels=max_pixels, size=size)
    except ImageError as exc:
        return DecodeResult(path, False, size=facts.size, sha256=facts.sha256, reason=exc.reason, message=str(exc))
    except MemoryError:
        return DecodeResult(path, False, size=facts.size, sha256=facts.sha256, reason="too-large",
                            message="ran out of memory decoding this file")
    return DecodeResult(path, True, facts.size, facts.sha256, d.width, d.height, d.format, d.pixels, camera=d.camera)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class DecodePool:
    """``with DecodePool(...) as pool: for r in pool.map(paths): ...``"""

    def __init__(self, *, max_pixels: int, max_bytes: int, size: int, workers: int = 0) -> None:
        self.args = (max_pixels, max_bytes, size)
        self.workers = workers or default_workers()
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the parent holds gRPC channels and onnxruntime threads that must not be forked
            self._executor = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        return self._executor

    def map(self, paths: Iterable[str], count: int | None = None) -> Iterator[DecodeResult]:
        paths = list(paths)
        if len(paths) < INLINE_BELOW or self.workers <= 1:
            for p in paths:
                yield decode_file(p, *self.args)
            return
        pool, window = self._pool(), self.workers * 16
        inflight: deque[Future] = deque()
        it = iter(paths)
        for p in it:
            inflight.append(pool.submit(decode_file, p, *self.args))
            if len(inflight) >= window:
                break
        while inflight:
            yield inflight.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append(pool.submit(decode_file, nxt, *self.args))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
