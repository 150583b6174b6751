"""Which layers a model starts and ends with, found from the model itself (no per-architecture lists).

The output layers are the convs/linears that produce the model's outputs (a classifier's final Linear, a
detector's heatmap and box convs): torch-pruning's dependency graph is walked back from the outputs through
parameter-free ops (activations, concat). The first layer is the first conv/linear a forward pass runs.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch_pruning as tp
from torch import nn

PRUNABLE = (nn.Conv2d, nn.Linear)
# Classifiers pool globally, so any input size traces the same graph; detectors carry their input shape.
CLASSIFIER_TRACE_SIZE = 32


def example_input(model: nn.Module) -> torch.Tensor:
    """A zero batch of one image the model accepts."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        shape = (model.spec["in_channels"], CLASSIFIER_TRACE_SIZE, CLASSIFIER_TRACE_SIZE)
    return torch.zeros(1, *shape)


@contextmanager
def evaluating(model: nn.Module):
    """Eval mode for a tracing forward pass: in train mode it would move the batch-norm running statistics."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    with evaluating(model):
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    found, seen = [], set()
    stack = [node for node in graph.module2node.values() if not node.outputs]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, PRUNABLE):
            found.append(node.module)
        else:
            stack.extend(node.inputs)
    return found


def first_layer(model: nn.Module, example: torch.Tensor) -> nn.Module:
    called = []
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    handles = [m.register_forward_hook(lambda module, inputs, output: called.append(module)) for m in layers]
    try:
        with evaluating(model), torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return called[0]


def end_layer_names(model: nn.Module) -> list[str]:
    """Names of the first layer and the output layer(s): the layers pruning usually leaves dense."""
    example = example_input(model)
    ends = {id(first_layer(model, example))} | {id(m) for m in output_layers(model, example)}
    return [name for name, m in model.named_modules() if id(m) in ends]
