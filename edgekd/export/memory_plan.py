"""Activation memory of one inference: tensor lifetimes over the op order, the peak of live bytes, and the
offsets TFLite Micro's greedy planner would give each tensor. Torch-free, pure functions.

Lifetimes follow TFLite Micro (`AllocationInfoBuilder`): step 0 holds the graph inputs, op k runs at step
k + 1; a tensor lives from the step that produces it to the last step that reads it, and graph outputs
live to the end.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGNMENT = 16  # TFLite Micro rounds every planned buffer up to this (MicroArenaBufferAlignment)


@dataclass(frozen=True)
class Buffer:
    size: int
    first: int  # first step it is alive (0: before the first op)
    last: int  # last step it is alive, inclusive
    tensor: int = -1  # tensor index; -1 for a kernel's scratch buffer


def lifetimes(op_io: list[tuple[list[int], list[int]]], inputs, outputs, sizes: dict[int, int]) -> list[Buffer]:
    """One Buffer per tensor in `sizes` (tensor index -> bytes; constants left out) that the graph touches,
    in tensor-index order. `op_io` lists each op's (input tensor indices, output tensor indices)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in [*inputs, *outputs]:
        first[t] = last[t] = 0
    for step, (op_inputs, op_outputs) in enumerate(op_io, start=1):
        for t in op_outputs:
            first[t] = last[t] = step
        for t in op_inputs:
            if t >= 0:
                last[t] = step
    for t in outputs:
        last[t] = len(op_io)
    return [Buffer(sizes[t], first[t], last[t], t) for t in sorted(first) if sizes.get(t)]


def liveness_peak(buffers: list[Buffer]) -> tuple[int, int]:
    """(peak bytes alive at once, the step where it happens): the least memory any planner can reach."""
    steps = range(max((b.last for b in buffers), default=0) + 1)
    live = [sum(b.size for b in buffers if b.first <= step <= b.last) for step in steps]
    peak = max(live, default=0)
    return peak, live.index(peak) if live else 0


def align(size: int, alignment: int = ALIGNMENT) -> int:
    return -(-size // alignment) * alignment


def greedy_plan(buffers: list[Buffer], alignment: int = ALIGNMENT) -> tuple[int, list[int]]:
    """(arena bytes, offset of each buffer) from TFLite Micro's GreedyMemoryPlanner, step by step.

    Largest buffer first (ties: later tensors first, as TFLM fills its sort array from the end), each placed
    in the lowest gap between buffers that are alive at the same time. Not optimal: it can exceed the
    liveness peak when a large tensor's lifetime fragments the arena (e.g. residual blocks)."""
    sizes = [align(b.size, alignment) for b in buffers]
    order = sorted(reversed(range(len(buffers))), key=lambda i: -sizes[i])
    offsets = [0] * len(buffers)
    placed: list[int] = []  # buffer indices in offset order
    for i in order:
        candidate = 0
        for j in placed:
            overlaps = buffers[j].first <= buffers[i].last and buffers[i].first <= buffers[j].last
            if not overlaps:
                continue
            if offsets[j] - candidate >= sizes[i]:
                break
            candidate = max(candidate, offsets[j] + sizes[j])
        offsets[i] = candidate
        position = next((k for k, j in enumerate(placed) if offsets[j] > candidate), len(placed))
        placed.insert(position, i)
    return max((offsets[i] + sizes[i] for i in range(len(buffers))), default=0), offsets
