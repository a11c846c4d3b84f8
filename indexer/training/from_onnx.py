"""Load an exported embedder (ONNX) back into a trainable torch ``Embedder``.

The exporter folds every BatchNorm into the convolution before it (``do_constant_folding``), so the file
holds fused weights: conv ``W' = W * g / s`` with a bias ``b' = beta - mean * g / s``. They go back into the
same architecture with each BatchNorm made an exact pass-through plus that bias (scale 1, running mean 0,
running variance ``1 - eps`` so that ``sqrt(var + eps) = 1``): the torch model computes what the file
computes, and training can start from a shipped model (e.g. a second stage on top of v10) without the
checkpoint that produced it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from indexer.training.backbone import FEATURE_DIM, Embedder, load_lite0

__all__ = ["embedder_from_onnx"]


def _forward_order(net: nn.Module, size: int) -> tuple[list[nn.Conv2d], list[nn.BatchNorm2d]]:
    """Convolutions and BatchNorms in the order one forward pass calls them (the order ONNX's graph lists them)."""
    convs: list[nn.Conv2d] = []
    norms: list[nn.BatchNorm2d] = []
    hooks = [m.register_forward_hook(lambda mod, *_: (convs if isinstance(mod, nn.Conv2d) else norms).append(mod))
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    try:
        with torch.no_grad():
            net.extract_features(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    return convs, norms


def embedder_from_onnx(path: Path) -> Embedder:
    """The ``Embedder`` (Lite0 -> GeM or average pool -> projection -> L2) whose output is the file's output.

    The ImageNet classifier (``backbone._fc``, not part of the file) keeps its pretrained weights, so a
    distillation head can still start from it. Raises ValueError when the file is not such an embedder."""
    import onnx
    from onnx import numpy_helper

    from indexer.modelspec import read_spec

    spec = read_spec(Path(path))
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    pooling = "gem" if "pool.p" in inits else "avg"
    dim = spec.dim if matmuls else None
    student = Embedder(load_lite0(), pooling=pooling, dim=dim)
    net = student.backbone
    conv_mods, bn_mods = _forward_order(net, spec.input_size)
    if len(convs) != len(conv_mods) or len(bn_mods) != len(conv_mods):
        raise ValueError(f"{path}: {len(convs)} convolutions, the Lite0 embedder has {len(conv_mods)}")
    with torch.no_grad():
        for node, conv, bn in zip(convs, conv_mods, bn_mods):
            w, b = inits[node.input[1]], inits[node.input[2]]
            if tuple(w.shape) != tuple(conv.weight.shape) or b.shape[0] != bn.num_features:
                raise ValueError(f"{path}: convolution {node.name} is {w.shape}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w.copy()))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b.copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        if pooling == "gem":
            student.pool.p.fill_(float(inits["pool.p"]))
        if matmuls:
            w = inits[matmuls[0].input[1]]
            if w.shape != (FEATURE_DIM, spec.dim):
                raise ValueError(f"{path}: projection is {w.shape}, expected {(FEATURE_DIM, spec.dim)}")
            student.proj.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
    return student.eval()
