"""ONNX Runtime embedder: uint8 model pixels -> unit vectors, with the model card read from the file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexer.errors import ModelError
from indexer.modelspec import SPEC_KEY, ModelSpec, weights_digest
from indexer.preprocess import normalize


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class OnnxEmbedder:
    """Batched embedding with ONNX Runtime; CUDA provider when present, else CPU.

    ``spec.weights`` is the digest of the loaded file's weights (so ``spec.model_id`` names these weights);
    ``weights`` overrides it for a derived copy that must keep its source's identity (the fp16 copy)."""

    def __init__(self, model_path: Path, *, threads: int = 0, providers: list[str] | None = None,
                 weights: str | None = None) -> None:
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"model file not found: {model_path}")
        before = _file_state(model_path)
        if weights is None:
            try:
                weights = weights_digest(model_path.read_bytes())
            except ValueError as exc:
                raise ModelError(f"cannot load ONNX model {model_path}: {exc}") from exc
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if providers is None:
            wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in wanted if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"cannot load ONNX model {model_path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if SPEC_KEY not in meta:
            raise ModelError(f"{model_path} has no {SPEC_KEY} metadata; re-export it with `python -m indexer.training export`")
        if _file_state(model_path) != before:  # replaced while loading: the digest may not be of these weights
            raise ModelError(f"{model_path} changed while it was being loaded; load it again")
        self.spec = ModelSpec.from_json(meta[SPEC_KEY]).with_weights(weights)
        self.path = model_path
        self.providers = self.session.get_providers()

    @property
    def dim(self) -> int:
        return self.spec.dim

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, dim) unit vectors. Raises ModelError on non-finite output."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = normalize(pixels, self.spec)
        (out,) = self.session.run([self.spec.output_name], {self.spec.input_name: x})
        out = np.asarray(out, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ModelError("the model produced non-finite embeddings")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if np.abs(norms - 1).max() > 1e-3:  # exports normalise already; stay robust to ones that do not
            out = out / np.maximum(norms, 1e-12)
        return out


def _file_state(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)
