"""Parameter and MAC counts. MACs come from torch's own FLOP counter (FLOPs / 2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a single input of `input_shape` (C, H, W)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return counter.get_total_flops() // 2


def model_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    params = count_params(model)
    return {"params": params, "macs": count_macs(model, input_shape), "fp32_bytes": params * 4}
