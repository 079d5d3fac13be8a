"""The network: an MLP emitting logits for the three `Signal` classes.

torch is imported inside functions only, so importing this module (Django start-up, the web
process) never loads torch. Randomness comes from an explicit `torch.Generator`, never the
process-global one: two trainings in two worker threads of one process stay deterministic for
their seeds (nn.Dropout would draw from the shared global generator).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any


def torch_threads(requested: int | None = None) -> int:
    """Intra-op threads for one training: half the cores (the web process and a second worker
    need the rest), at least 1, at most 8 (MLPs this size stop scaling well before that)."""
    if requested:
        return max(1, int(requested))
    return max(1, min(8, (os.cpu_count() or 1) // 2))


@cache
def _classes() -> dict[str, Any]:
    import torch
    from torch import nn

    class SeededDropout(nn.Module):
        """Inverted dropout drawing its mask from the model's own generator."""

        def __init__(self, p: float, generator: torch.Generator | None) -> None:
            super().__init__()
            self.p = p
            self.generator = generator

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.p == 0.0:
                return x
            keep = 1.0 - self.p
            # The mask is built in place and pre-scaled: one multiplication is all autograd
            # records (uniform + compare is also cheaper than bernoulli_ on the CPU).
            mask = torch.empty_like(x).uniform_(generator=self.generator).lt_(keep).div_(keep)
            return x * mask

    activations = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
    }
    return {"SeededDropout": SeededDropout, "activations": activations}


def build_mlp(
    n_inputs: int,
    n_outputs: int,
    *,
    hidden_layers: list[int],
    dropout: float,
    activation: str,
    generator: Any = None,
    dropout_generator: Any = None,
) -> Any:
    """Linear → activation → dropout per hidden layer, then a Linear head (logits, no softmax).

    Weights are drawn from `generator` with PyTorch's default Linear initialisation bounds
    (uniform ±1/√fan_in), so the same seed gives the same initial network in any thread — and on
    any device: the network is built on the CPU and moved afterwards. Dropout masks come from
    `dropout_generator` (default: `generator`); it must live on the device the model trains on
    (a CUDA model needs a CUDA generator).
    """
    import torch
    from torch import nn

    classes = _classes()
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden_layers:
        layers.append(nn.Linear(width, size))
        layers.append(classes["activations"][activation]())
        if dropout > 0:
            layers.append(
                classes["SeededDropout"](
                    dropout, dropout_generator if dropout_generator is not None else generator
                )
            )
        width = size
    layers.append(nn.Linear(width, n_outputs))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.Linear):
                bound = 1.0 / (module.in_features**0.5)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    return model


def parameter_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))
