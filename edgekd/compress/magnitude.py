"""Unstructured magnitude pruning: zero the smallest weights of every conv and linear layer.

The zeros do not make a dense kernel faster; they make the weights compress (a zip of the model file) and feed
sparse kernels. `torch.nn.utils.prune` keeps a mask beside each pruned weight (`weight = weight_orig *
weight_mask`), so pruned weights stay zero while the model is fine-tuned; `make_permanent` then bakes the zeros
into plain `weight` tensors before the model is saved.

Gradual pruning (Zhu & Gupta 2017, arXiv:1710.01878) raises the sparsity along a cubic schedule, fine-tuning
after each step, so the network adapts while the last, most harmful weights are removed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import prune

from edgekd.compress.graph import PRUNABLE, end_layer_names
from edgekd.errors import ConfigError

SCOPES = ("global", "layer")


def gradual_schedule(final_sparsity: float, steps: int) -> list[float]:
    """Sparsity after each of `steps` steps: s_t = s_f * (1 - (1 - t / steps)^3), t = 1..steps (cubic, from 0).

    Early steps remove much (redundant weights are many), the last ones little.
    """
    if steps < 1:
        raise ConfigError(f"pruning steps must be at least 1, got {steps}")
    return [final_sparsity * (1 - (1 - t / steps) ** 3) for t in range(1, steps + 1)]


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def magnitude_prune(
    model: nn.Module,
    sparsity: float,
    scope: str = "global",
    exclude: Iterable[str] = (),
    dense_ends: bool = True,
) -> list[str]:
    """Zero the `sparsity` fraction of smallest-magnitude weights; returns the names of the pruned layers.

    scope `global` ranks all weights together (layers end up with different sparsities), `layer` prunes each
    layer to `sparsity`. `exclude` names layers to leave dense; with `dense_ends` the first conv and the
    output layer(s) stay dense as well: they hold few weights and are the most sensitive (the first sees raw
    pixels, the output layer writes every logit). Pruning an already pruned model raises the sparsity: the
    zeros it has are the smallest weights, so they stay pruned.
    """
    if not 0 < sparsity < 1:
        raise ConfigError(f"sparsity must be between 0 and 1 (exclusive), got {sparsity}")
    if scope not in SCOPES:
        raise ConfigError(f"pruning scope '{scope}': choose {' or '.join(SCOPES)}")
    layers = prunable_layers(model)
    unknown = sorted(set(exclude) - set(layers))
    if unknown:
        raise ConfigError(f"cannot exclude {', '.join(unknown)}: not conv/linear layers of this model")
    make_permanent(model)
    # global_unstructured flattens weights with .view, which fails on the channels-last tensors training leaves.
    model.to(memory_format=torch.contiguous_format)
    dense = set(exclude) | (set(end_layer_names(model)) if dense_ends else set())
    targets = {name: m for name, m in layers.items() if name not in dense}
    if not targets:
        raise ConfigError("no layer left to prune: every conv/linear layer is excluded")
    if scope == "global":
        prune.global_unstructured(
            [(m, "weight") for m in targets.values()], pruning_method=prune.L1Unstructured, amount=sparsity
        )
    else:
        for module in targets.values():
            prune.l1_unstructured(module, "weight", amount=sparsity)
    return list(targets)


def make_permanent(model: nn.Module) -> nn.Module:
    """Remove the pruning masks, leaving their zeros in plain `weight` tensors (a no-op on an unpruned model)."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


def baked_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict `make_permanent` would leave, without touching the model (masks applied to weights)."""
    state = {}
    for key, tensor in model.state_dict().items():
        if key.endswith(".weight_orig"):
            prefix = key.removesuffix("_orig")
            state[prefix] = tensor * model.state_dict()[f"{prefix}_mask"]
        elif not key.endswith(".weight_mask"):
            state[key] = tensor
    return state
