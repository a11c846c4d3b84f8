"""ONNX Runtime embedder: uint8 model pixels -> unit vectors, with the model card read from the file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexer.errors import ModelError
from indexer.modelspec import SPEC_KEY, ModelSpec
from indexer.preprocess import normalize


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class OnnxEmbedder:
    """Batched embedding with ONNX Runtime; CUDA provider when present, else CPU."""

    def __init__(self, model_path: Path, *, threads: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"model file not found: {model_path}")
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
            raise ModelError(f"{model_path} has no {SPEC_KEY} metadata; re-export it with indexer.training.export")
        self.spec = ModelSpec.from_json(meta[SPEC_KEY])
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


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)
