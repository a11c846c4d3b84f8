"""A model's id names its weights: two files with one name and version but other weights get two ids (two
collections, a re-embed on a switch); a file whose metadata alone changed (a new threshold) keeps its id."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL
from indexer.embedder import OnnxEmbedder
from indexer.modelspec import ModelSpec, read_spec, write_spec

onnx = pytest.importorskip("onnx")  # the tools' reader/writer, to make files that differ in one way only


def nudge_weights(src: Path, dst: Path, factor: float = 1.01) -> Path:
    """``src`` with its largest weight tensor scaled: the same spec (name, version, threshold), other weights."""
    from onnx import numpy_helper

    model = onnx.load(str(src))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(model, str(dst))
    return dst


def test_model_id_names_the_weights_not_the_metadata(tmp_path: Path) -> None:
    from indexer.modelspec import weights_digest

    shipped = OnnxEmbedder(DEFAULT_MODEL).spec
    spec = read_spec(DEFAULT_MODEL)
    assert shipped.weights == weights_digest(DEFAULT_MODEL.read_bytes())
    assert shipped.model_id == f"{spec.name}-v{spec.version}-{shipped.weights[:12]}"

    other = OnnxEmbedder(nudge_weights(DEFAULT_MODEL, tmp_path / "other.onnx")).spec
    assert (other.name, other.version, other.threshold) == (spec.name, spec.version, spec.threshold)
    assert other.model_id != shipped.model_id  # same name and version, other weights: another model

    recalibrated = tmp_path / "recalibrated.onnx"  # `crossfit --write` / calibration rewrite only the spec
    shutil.copy(DEFAULT_MODEL, recalibrated)
    write_spec(recalibrated, spec.with_threshold(0.5))
    again = OnnxEmbedder(recalibrated).spec
    assert again.threshold == 0.5 and again.model_id == shipped.model_id

    # the digest is never stored: a spec written from a loaded one cannot carry a stale digest into another file
    assert "weights" not in shipped.to_json()
    assert ModelSpec.from_json(shipped.to_json()).weights == ""
    assert OnnxEmbedder(DEFAULT_MODEL, weights="ab" * 32).spec.model_id.endswith("-abababababab")

