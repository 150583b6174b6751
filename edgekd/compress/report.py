"""How sparse and how big a model is: zero fraction per layer, dense / nonzero / zip bytes of its weights.

The zip size is how the thesis measured what pruning gains on disk (28 MB -> 9.3 MB): a deflated state dict
shrinks with its zeros, while the dense fp32 size does not change.
"""

from __future__ import annotations

import io
import zipfile

import torch
from torch import nn

from edgekd.compress.graph import PRUNABLE
from edgekd.compress.magnitude import baked_state_dict


def _effective_weight(module: nn.Module) -> torch.Tensor:
    # With a pruning mask attached, `weight` is only refreshed by the next forward pass.
    if hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


def sparsity_report(model: nn.Module) -> dict:
    """Zero fraction of every conv/linear weight and over all of them (masks included)."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE):
            weight = _effective_weight(module).detach()
            zeros = int((weight == 0).sum())
            layers[name] = {"params": weight.numel(), "zeros": zeros, "sparsity": zeros / weight.numel()}
    params = sum(layer["params"] for layer in layers.values())
    zeros = sum(layer["zeros"] for layer in layers.values())
    return {"sparsity": zeros / params if params else 0.0, "params": params, "zeros": zeros, "layers": layers}


def compressed_size(model: nn.Module) -> dict:
    """Bytes of the state dict: dense (as stored, fp32), nonzero values only (no sparse index cost), and zipped
    (the `torch.save` bytes deflated, as `zip` would store the model file)."""
    state = baked_state_dict(model)
    dense = sum(t.numel() * t.element_size() for t in state.values())
    nonzero = sum(int(torch.count_nonzero(t)) * t.element_size() for t in state.values())
    raw = io.BytesIO()
    torch.save(state, raw)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.pt", raw.getvalue())
    return {"dense_bytes": dense, "nonzero_bytes": nonzero, "zip_bytes": len(zipped.getvalue())}
