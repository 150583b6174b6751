"""Structured (channel) pruning: remove whole conv channels so the model really gets smaller and faster.

torch-pruning's dependency graph (Fang et al. CVPR 2023, arXiv:2301.12900) groups every tensor slice a channel
touches: the conv's filter, its batch norm, the next layers' input slices, both sides of a residual or FPN add,
a depthwise conv's groups. Groups are ranked by the L2 norm of their weights and the weakest go first, a
small fraction of every layer per step, until the MACs reach the target. The output layers (found from the
graph, see `graph.output_layers`) are left alone so the model's outputs keep their shape.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from edgekd.compress.graph import evaluating, example_input, output_layers
from edgekd.errors import ConfigError
from edgekd.models.profile import count_macs, count_params


def conv_channels(model: nn.Module) -> int:
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def refresh_feature_channels(model: nn.Module, example: torch.Tensor) -> None:
    """Re-measure `feature_channels` (distillation sizes its adapters from it) after channels were removed."""
    with evaluating(model), torch.no_grad():
        _, features = model.forward_features(example)
    model.feature_channels = {name: features[name].shape[1] for name in model.feature_channels}


class ChannelPruner:
    """Prunes `model` in place; `prune_to` may be called again with a lower ratio (gradual pruning).

    Every step removes `channel_step` of each layer's original channels; no layer loses more than
    `max_channel_ratio`. `round_to` keeps channel counts multiples of it (8 suits int8 SIMD kernels).
    """

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor,
        channel_step: float = 0.01,
        max_channel_ratio: float = 0.9,
        round_to: int | None = None,
    ):
        if not 0 < channel_step <= max_channel_ratio < 1:
            raise ConfigError(f"need 0 < channel step ({channel_step}) <= max channel ratio ({max_channel_ratio}) < 1")
        self.model, self.example = model, example
        self.input_shape = tuple(example.shape[1:])
        self.before = {"macs": count_macs(model, self.input_shape), "params": count_params(model)}
        self.channels_before = conv_channels(model)
        with evaluating(model):
            self.pruner = tp.pruner.MetaPruner(
                model,
                example,
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                pruning_ratio=max_channel_ratio,
                iterative_steps=max(1, round(max_channel_ratio / channel_step)),
                ignored_layers=output_layers(model, example),
                round_to=round_to,
            )

    def prune_to(self, macs_ratio: float) -> dict:
        """Remove channels until MACs <= `macs_ratio` x the original; returns `summary()`."""
        if not 0 < macs_ratio < 1:
            raise ConfigError(f"MACs ratio must be between 0 and 1 (exclusive), got {macs_ratio}")
        target = macs_ratio * self.before["macs"]
        while count_macs(self.model, self.input_shape) > target:
            if self.pruner.current_step >= self.pruner.iterative_steps:
                reached = count_macs(self.model, self.input_shape) / self.before["macs"]
                raise ConfigError(
                    f"cannot reach {macs_ratio:.0%} of the MACs: stopped at {reached:.0%} with every layer at the "
                    f"maximum channel ratio {self.pruner.pruning_ratio}; raise it or ask for a higher MACs ratio"
                )
            self.pruner.step()
        refresh_feature_channels(self.model, self.example)
        return self.summary()

    def summary(self) -> dict:
        macs, params = count_macs(self.model, self.input_shape), count_params(self.model)
        return {
            "macs_before": self.before["macs"],
            "macs_after": macs,
            "params_before": self.before["params"],
            "params_after": params,
            "macs_ratio": macs / self.before["macs"],
            "channel_ratio": conv_channels(self.model) / self.channels_before,  # fraction of conv channels kept
        }


def structured_prune(model: nn.Module, target_macs_ratio: float, example: torch.Tensor | None = None, **kwargs) -> dict:
    """One-shot: prune `model` in place until MACs <= `target_macs_ratio` x the original (see `ChannelPruner`)."""
    example = example_input(model) if example is None else example
    return ChannelPruner(model, example, **kwargs).prune_to(target_macs_ratio)
