"""Training metrics that a step can update without reading anything back to the host.

torchmetrics' ``MeanMetric`` looks for NaN in every value on the host (``nans.any()``) and turns a Python weight into
a device tensor (a blocking copy), and the classification metrics check their inputs' values (``validate_args``):
each is a GPU synchronisation per training step. These states only ever grow on the device; ``compute`` (once per
epoch) is where they are read. A NaN loss is FiniteGuard's to report, so it is not filtered here.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class WeightedMean(Metric):
    """The mean of values weighted by their batch sizes, e.g. a per-example mean loss over an epoch."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: Tensor, weight: int) -> None:
        self.total += value.detach().sum().to(self.total.dtype) * weight  # a Python scalar is a kernel argument
        self.weight += weight

    def compute(self) -> Tensor:
        return self.total / self.weight


class Accuracy(Metric):
    """The fraction of predictions equal to their labels."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, labels: Tensor) -> None:
        self.correct += (predictions == labels).sum()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total
