"""The training losses: ArcFace (copies), KoLeo (spreading), distillation from the frozen teacher (logits and
the ranking of other photos)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArcFace", "kd_loss", "koleo_loss", "similarity_kd_loss"]


class ArcFace(nn.Module):
    """Additive angular margin softmax (Deng et al. 2019) over ``n`` classes."""

    def __init__(self, dim: int, n: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, accuracy of the nearest class weight) for unit embeddings ``emb`` of classes ``labels``."""
        cos = emb @ F.normalize(self.weight, dim=1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta.gather(1, labels[:, None]) + self.margin)
        logits = cos.scatter(1, labels[:, None], target) * self.scale
        loss = F.cross_entropy(logits, labels)
        acc = (cos.argmax(1) == labels).float().mean()
        return loss, acc


def koleo_loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Kozachenko-Leonenko entropy term (Sablayrolles et al. 2019, as in SSCD): -mean log distance from each
    L2-normalised embedding to its nearest embedding of another photo in the batch (views of the same
    photo are not neighbours). It spreads different photos apart, which lowers the cosine of look-alike
    photos the model has never seen and so the threshold a target precision needs."""
    sim = (emb @ emb.T).masked_fill(labels[:, None] == labels[None, :], -2.0)
    nearest = sim.max(1).values
    return -torch.log((2 - 2 * nearest).clamp(min=1e-8).sqrt()).mean()


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes at temperature ``t``, scaled by t² (Hinton et al. 2015)."""
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t


def similarity_kd_loss(emb: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
                       teacher_sim: torch.Tensor, t: float) -> torch.Tensor:
    """Relational distillation: each view's ranking of the other training photos should be the teacher's.

    ``anchors`` (P×D, unit) stand for the P training photos in the student's space (the ArcFace class
    weights, detached), ``teacher_sim`` (N×P) holds the teacher's cosines between each view's photo and
    every training photo. Both rows are standardised over the other photos (the view's own photo is left
    out) before a softmax at temperature ``t``, and the loss is KL(teacher || student): only the order and
    relative gaps of the neighbours are asked for, not their cosines, so the copy losses stay free to push
    every other photo far below the duplicate threshold while the embedding keeps the backbone's notion of
    which photos look alike (what nearest-neighbour class checks measure)."""
    own = F.one_hot(labels, anchors.shape[0]).bool()

    def standardised(x: torch.Tensor) -> torch.Tensor:
        x = x.masked_fill(own, 0.0)
        n = anchors.shape[0] - 1
        mean = x.sum(1, keepdim=True) / n
        var = ((x - mean).masked_fill(own, 0.0) ** 2).sum(1, keepdim=True) / n
        return ((x - mean) / var.clamp(min=1e-12).sqrt()).masked_fill(own, float("-inf")) / t

    s, q = standardised(emb @ anchors.T), standardised(teacher_sim)
    log_s, log_q = F.log_softmax(s, 1).masked_fill(own, 0.0), F.log_softmax(q, 1).masked_fill(own, 0.0)
    return (log_q.exp() * (log_q - log_s)).sum(1).mean()
