"""Layer widths (channel counts) of a model, so that a model file can rebuild a channel-pruned model.

After structured pruning a layer keeps its type and place but holds fewer channels, so `.spec` builds a model of
the original widths. A model file of a pruned model also stores every layer's widths; loading builds from the
spec, shrinks the layers to those widths and then loads the weights as usual (plain tensors and ints, so the file
still loads with `weights_only=True`).
"""

from __future__ import annotations

import torch
from torch import nn

# The attributes torch-pruning changes when it removes channels (conv, depthwise conv, batch norm, linear).
WIDTH_ATTRIBUTES = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features")


def layer_widths(model: nn.Module) -> dict[str, dict[str, int]]:
    """{layer name: {attribute: value}} for every leaf layer that has a width."""
    widths = {}
    for name, module in model.named_modules():
        attrs = {a: getattr(module, a) for a in WIDTH_ATTRIBUTES if isinstance(getattr(module, a, None), int)}
        if attrs and not list(module.children()):
            widths[name] = attrs
    return widths


def resize_layers(model: nn.Module, widths: dict[str, dict[str, int]], state_dict: dict[str, torch.Tensor]) -> None:
    """Give each named layer `widths` and empty parameters/buffers shaped as in `state_dict`, ready for loading.

    Raises KeyError when a layer or tensor is missing (the file does not belong to this architecture).
    """
    modules = dict(model.named_modules())
    for name, attrs in widths.items():
        module = modules[name]
        for attr, value in attrs.items():
            setattr(module, attr, value)
        for key, param in module._parameters.items():
            if param is not None:
                shape = state_dict[f"{name}.{key}"].shape
                module._parameters[key] = nn.Parameter(param.new_empty(shape), requires_grad=param.requires_grad)
        for key, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[key] = buffer.new_empty(state_dict[f"{name}.{key}"].shape)
