"""The network part of each model as one PyTorch module, from normalized input to the bundle's output.

Each module calls the same functions as the model's own prediction, so the ONNX
graph traced from it computes what evaluation computed. What comes after the
network (thresholds, labels, heatmap resizing) is in ``defectlab.runtime``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from defectlab.training.anomaly import AnomalyModel, generate_embedding
from defectlab.training.classifier import ClassifierModel
from defectlab.training.patches import PatchClassifier, extract_patch_features, transform_copy

__all__ = ["PROBABILITIES", "PATCH_DISTANCES", "build_graph"]

PROBABILITIES = "probabilities"
"""Output of a classification graph: float32 ``(N, classes)``, rows summing to 1."""

PATCH_DISTANCES = "patch_distances"
"""Output of an anomaly graph: float32 ``(N, h, w)`` patch scores, the distance of each patch to its
nearest good patch, standardized per position when the model has position statistics
(``AnomalyModel.compute_patch_scores``)."""


class _GlobalClassifier(nn.Module):
    def __init__(self, model: ClassifierModel) -> None:
        super().__init__()
        self.network = model.network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(batch.contiguous(memory_format=torch.channels_last)), dim=1)


class _PatchClassifier(nn.Module):
    def __init__(self, model: PatchClassifier) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head
        height, width = model.preprocessing.input_size
        self.grid = (math.ceil(height / 16), math.ceil(width / 16))
        self.copies = model.test_time_copies

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(())
        for name in self.copies:
            features = extract_patch_features(self.backbone, transform_copy(batch, name), self.grid)
            total = total + torch.softmax(self.head(features), dim=1)
        return total / len(self.copies)


class _PatchDistances(nn.Module):
    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.register_buffer("bank_t", model.memory_bank.t().contiguous())
        self.register_buffer("bank_norms", (model.memory_bank * model.memory_bank).sum(dim=1))
        self.standardized = model.position_mean is not None
        if self.standardized:
            self.register_buffer("position_mean", model.position_mean.clone())
            self.register_buffer("position_std", model.position_std.clone())

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        embedding = generate_embedding(self.backbone, batch)
        count, dim, height, width = embedding.shape
        patches = embedding.permute(0, 2, 3, 1).reshape(-1, dim)
        # |q - b|^2 = |q|^2 - 2 q.b + |b|^2, as in nearest_distances.
        partial = torch.addmm(self.bank_norms, patches, self.bank_t, alpha=-2.0)
        squared = partial.min(dim=1).values + (patches * patches).sum(dim=1)
        distances = squared.clamp_min(0.0).sqrt().reshape(count, height, width)
        if not self.standardized:
            return distances
        # As in AnomalyModel.standardize.
        return (distances - self.position_mean) / self.position_std


def build_graph(model: ClassifierModel | PatchClassifier | AnomalyModel) -> tuple[nn.Module, str]:
    """Return the model's network as a module in evaluation mode, and the name of its output."""
    if isinstance(model, AnomalyModel):
        return _PatchDistances(model).eval(), PATCH_DISTANCES
    if isinstance(model, PatchClassifier):
        return _PatchClassifier(model).eval(), PROBABILITIES
    return _GlobalClassifier(model).eval(), PROBABILITIES
