"""Quantization-aware fine-tuning: train through int8 rounding so that post-training int8 loses less.

The model keeps its architecture (so its spec still rebuilds it and the exporters see a plain float model):
- BatchNorm scales are folded into the preceding conv's weights, as the exporters fold them, and each BN is
  left as a frozen per-channel bias (weight 1, mean 0, var 1 - eps);
- conv / linear weights are fake-quantized per output channel, symmetric int8 (what TFLite and onnxruntime
  use), through a parametrization, so the optimiser updates the float weights with straight-through gradients;
- activations (outputs of ReLU / ReLU6 and of the output layers) are fake-quantized per tensor, asymmetric
  int8, with moving-average min/max ranges.
`QuantizationAwareModel.finish()` removes all of it and leaves the fine-tuned float weights, which the
normal export then quantizes.
"""

from __future__ import annotations

import types

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
from torch.nn.utils import parametrize


class _PerChannelInt8(nn.Module):
    """Symmetric per-output-channel int8 rounding of a weight tensor (scale = max |w| / 127)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / 127
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


def conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.BatchNorm2d]]:
    """(conv, bn) where a BatchNorm2d directly follows a Conv2d of matching width inside the same parent."""
    pairs = []
    for parent in model.modules():
        children = list(parent.children())
        for first, second in zip(children, children[1:], strict=False):
            if (
                isinstance(first, nn.Conv2d)
                and isinstance(second, nn.BatchNorm2d)
                and second.num_features == first.out_channels
            ):
                pairs.append((first, second))
    return pairs


@torch.no_grad()
def fold_bn_scale(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv(x) * gamma / sigma + (beta - mean * gamma / sigma) == conv'(x) + bias', with BN kept as the bias."""
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(factor.reshape(-1, *([1] * (conv.weight.ndim - 1))))
    bn.bias.copy_(bn.bias - bn.running_mean * factor)
    bn.weight.fill_(1.0)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


def _always_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


class QuantizationAwareModel:
    """Prepare `model` in place for fake-quantized training; `finish()` turns it back into a plain model."""

    def __init__(self, model: nn.Module, output_layers: list[nn.Module] | None = None):
        self.model = model
        self.batchnorms = []
        for conv, bn in conv_bn_pairs(model):
            fold_bn_scale(conv, bn)
            bn.train = types.MethodType(_always_eval, bn)  # a frozen bias: batch statistics would undo the fold
            bn.weight.requires_grad_(False)
            self.batchnorms.append(bn)
        self.weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        for module in self.weighted:
            parametrize.register_parametrization(module, "weight", _PerChannelInt8())
        activations = [m for m in model.modules() if isinstance(m, nn.ReLU | nn.ReLU6)]
        self.hooks = []
        for module in activations + list(output_layers or []):
            fake = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8)
            module.add_module("activation_fake_quant", fake)
            self.hooks.append(module.register_forward_hook(lambda mod, _inputs, out: mod.activation_fake_quant(out)))
        self.fake_quant_modules = activations + list(output_layers or [])

    def finish(self) -> nn.Module:
        for hook in self.hooks:
            hook.remove()
        for module in self.fake_quant_modules:
            del module.activation_fake_quant
        for module in self.weighted:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        for bn in self.batchnorms:
            del bn.train  # back to nn.Module.train
            bn.weight.requires_grad_(True)
        return self.model.eval()
