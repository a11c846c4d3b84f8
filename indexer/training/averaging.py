"""Weight averaging during training: an exponential moving average of the student's weights (``ema_decay``)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """Exponential moving average of a module's trainable weights (Polyak averaging), bias-corrected.

    Step t's weights count with decay ** (T - t), normalised as Adam normalises its moments, so the average
    needs no warm-up ramp and covers about 1 / (1 - decay) steps even in a run that is not much longer."""

    def __init__(self, params: list[nn.Parameter], decay: float) -> None:
        self.params, self.decay, self.steps = params, decay, 0
        self._sum = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        torch._foreach_lerp_(self._sum, [p.detach() for p in self.params], 1 - self.decay)

    @property
    def shadow(self) -> list[torch.Tensor]:
        """The averaged weights (the current weights before the first update)."""
        if not self.steps:
            return [p.detach().clone() for p in self.params]
        return [s / (1 - self.decay ** self.steps) for s in self._sum]

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)
