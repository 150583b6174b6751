"""The static activation memory plan: one arena, every activation at a fixed offset for the whole program.

Lifetimes and the greedy placement are `edgekd.export.memory_plan`'s (TFLite Micro's planner), with 4-byte
alignment instead of TFLM's 16. The graph input stays alive to the end so the uploaded input survives
repeated inferences without a staging copy."""

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
    return MemoryPlan(arena, {b.tensor: off for b, off in zip(buffers, offsets, strict=True)}, peak)
