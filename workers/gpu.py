"""GPU extras for a worker: an fp16 copy of the model for the CUDA provider."""
from __future__ import annotations

from pathlib import Path

from celery.utils.log import get_task_logger

logger = get_task_logger(f"{__name__}.celery")


def fp16_model(src: Path, cache_dir: Path) -> Path:
    """Convert an fp32 ONNX model to fp16 (inputs/outputs stay fp32), cached next to the data."""
    import onnx
    from onnxconverter_common import float16

    dst = cache_dir / f"{src.stem}.fp16.onnx"
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    model = onnx.load(str(src))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    onnx.save(half, str(tmp))
    tmp.replace(dst)  # atomic: several worker processes may convert at once
    return dst


def maybe_fp16(index, settings) -> None:  # noqa: ANN001
    """With CUDA and ``gpu_fp16``, swap the index's embedder for an fp16 one (same model card, so the
    same collection: fp16 vectors differ from fp32 ones by ~1e-3 in cosine)."""
    if not settings.gpu_fp16 or "CUDAExecutionProvider" not in index.embedder.providers:
        return
    try:
        from indexer.embedder import OnnxEmbedder

        path = fp16_model(Path(settings.model_path), Path(settings.data_dir) / "models")
        index._embedder = OnnxEmbedder(path, threads=settings.onnx_threads)
        logger.info("embedding in fp16 on CUDA (%s)", path)
    except Exception as exc:  # noqa: BLE001 - fp32 on the GPU still works
        logger.warning("fp16 conversion failed, staying in fp32: %s", exc)
