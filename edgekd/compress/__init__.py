"""Pruning: unstructured magnitude pruning (zeros that compress) and structured channel pruning (channels
removed, fewer MACs), with sparsity and size reports. Fine-tuning reuses the distillation training loops."""

from edgekd.compress.magnitude import gradual_schedule, magnitude_prune, make_permanent
from edgekd.compress.report import compressed_size, sparsity_report
from edgekd.compress.structured import ChannelPruner, structured_prune

__all__ = [
    "ChannelPruner",
    "compressed_size",
    "gradual_schedule",
    "magnitude_prune",
    "make_permanent",
    "sparsity_report",
    "structured_prune",
]
