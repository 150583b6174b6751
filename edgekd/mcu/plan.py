"""The static activation memory plan: one arena, every activation at a fixed offset for the whole program.

Lifetimes and the greedy placement are `edgekd.export.memory_plan`'s (TFLite Micro's planner), with 4-byte
alignment instead of TFLM's 16. The graph input stays alive to the end so the uploaded input survives
repeated inferences without a staging copy.

Each layer may also use the largest arena gap that no live tensor occupies while it runs as scratch (as TFLM's
kernels request scratch buffers from the arena): a port's fast kernels keep their working rows there instead of
on the stack, so speed costs no RAM beyond the arena."""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.export.memory_plan import Buffer, greedy_plan, lifetimes, liveness_peak
from edgekd.mcu.lower import Program

ALIGNMENT = 4


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: dict[int, int]  # tensor index -> byte offset in the arena
    liveness_peak: int  # the least any plan could use
    scratch: list[tuple[int, int]]  # per layer: (offset, bytes) of the largest gap free while it runs


def plan_memory(program: Program) -> MemoryPlan:
    tensors = program.model.tensors
    used = {t for layer in program.layers for t in (*layer.inputs, layer.output)} | set(program.inputs)
    sizes = {t: tensors[t].nbytes for t in used}
    steps = [(layer.inputs, [layer.output]) for layer in program.layers]
    buffers = lifetimes(steps, program.inputs, program.outputs, sizes)
    end = len(steps)
    buffers = [Buffer(b.size, b.first, end, b.tensor) if b.tensor in program.inputs else b for b in buffers]
    arena, offsets = greedy_plan(buffers, ALIGNMENT)
    peak, _ = liveness_peak(buffers)
    placed = list(zip(buffers, offsets, strict=True))
    scratch = [_largest_gap(placed, step, arena) for step in range(1, end + 1)]
    return MemoryPlan(arena, {b.tensor: off for b, off in placed}, peak, scratch)


def _largest_gap(placed: list[tuple[Buffer, int]], step: int, arena: int) -> tuple[int, int]:
    """(offset, bytes) of the largest 4-byte-aligned stretch of the arena no buffer alive at `step` covers."""
    busy = sorted((off, off + b.size) for b, off in placed if b.first <= step <= b.last)
    best, cursor = (0, 0), 0
    for start, stop in [*busy, (arena, arena)]:
        begin = -(-cursor // ALIGNMENT) * ALIGNMENT
        if start - begin > best[1]:
            best = (begin, start - begin)
        cursor = max(cursor, stop)
    return best
