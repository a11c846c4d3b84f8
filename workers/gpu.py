"""GPU extras for a worker: an fp16 copy of the model for the CUDA provider."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from celery.utils.log import get_task_logger

from indexer.embedder import OnnxEmbedder
from indexer.modelspec import weights_digest
from indexer.parts import Parts
from workers.settings import WorkerSettings

logger = get_task_logger(f"{__name__}.celery")


def fp16_cache_path(src: Path, data: bytes, cache_dir: Path) -> Path:
    """Where the fp16 copy of ``src`` (whose bytes are ``data``) is cached: named by a hash of the whole
    file, so a model replaced under the same name (even with an older mtime) never reuses an old copy."""
    return cache_dir / f"{src.stem}.{hashlib.sha256(data).hexdigest()[:16]}.fp16.onnx"


def fp16_model(src: Path, cache_dir: Path) -> tuple[Path, str]:
    """Convert an fp32 ONNX model to fp16 (inputs/outputs stay fp32), cached next to the data.
    Returns the copy and the weights digest of the source bytes it was made from."""
    data = Path(src).read_bytes()  # one read: the cache key, the digest and the conversion see the same bytes
    digest = weights_digest(data)
    dst = fp16_cache_path(Path(src), data, cache_dir)
    if dst.is_file():
        return dst, digest
    import onnx
    from onnxconverter_common import float16

    half = float16.convert_float_to_float16(onnx.load_from_string(data), keep_io_types=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")  # per process: several may convert at once
    onnx.save(half, str(tmp))
    tmp.replace(dst)  # atomic
    return dst, digest


def maybe_fp16(index: Parts, settings: WorkerSettings) -> None:
    """With CUDA and ``gpu_fp16``, swap the index's embedder for an fp16 one. It keeps the source's model
    id (``weights``), so the same collection: fp16 vectors differ from fp32 ones by ~1e-3 in cosine."""
    if not settings.gpu_fp16 or "CUDAExecutionProvider" not in index.embedder.providers:
        return
    try:
        path, weights = fp16_model(Path(settings.model_path), Path(settings.data_dir) / "models")
        if weights != index.spec.weights:
            logger.warning("%s changed since the index loaded it: staying in fp32 (restart to use the new model)",
                           settings.model_path)
            return
        index.embedder = OnnxEmbedder(path, threads=settings.onnx_threads, weights=weights)
        logger.info("embedding in fp16 on CUDA (%s)", path)
    except Exception as exc:  # noqa: BLE001 - fp32 on the GPU still works
        logger.warning("fp16 conversion failed, staying in fp32: %s", exc)
