"""Will TFLite Micro run this `.tflite`, and in how large an arena? Static answers from the graph alone;
`tflm_measure` asks the real interpreter. Torch-free.

The arena estimate is TFLM's own greedy plan of the activations (replayed exactly, `memory_plan`) plus
the interpreter's bookkeeping, modelled per tensor / op / output channel with sizes measured by the
RecordingMicroAllocator of the tflite-micro PyPI wheel (an x86-64 build with reference kernels) on 20
exported classifiers and detectors, int8 and fp32 (worst tail error 172 B):

    persistent = 700 + 24 * tensors + 150 * ops + 8 * conv/depthwise/FC output channels
                 + 64 * model inputs and outputs (+ 32 each when quantized) + 8 * scratch buffers
    arena      = max(planned activations + persistent,
                     persistent without the I/O tensors + the planner's temporary working memory)

The second term only wins for models with tiny activations: while planning, TFLM holds 40 B per tensor and
per planned buffer in temporary memory. On a 32-bit MCU the structs are smaller (4-byte pointers), so there
the estimate is an upper bound; optimised kernels (CMSIS-NN, ESP-NN) request extra scratch buffers.
"""

from __future__ import annotations

from pathlib import Path

from edgekd.export.memory_plan import Buffer, greedy_plan, lifetimes
from edgekd.export.model_graph import ModelGraph, read_graph

# Builtin ops registered by the tflite-micro wheel's all-ops resolver (the `Register_*` kernels in its
# _runtime.so, version 0.dev20261023); a model using any other op fails with "Didn't find op for builtin
# opcode". Notably absent: TILE, GELU, SIGN, POW, ATAN2, TOPK_V2, ONE_HOT, RANGE, NON_MAX_SUPPRESSION.
TFLM_BUILTIN_OPS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV
    DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED
    GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG
    LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG
    NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE
    RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND
    SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE
    TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE""".split()
)

# Interpreter bookkeeping in bytes (see the module docstring for where the numbers come from).
FIXED_OVERHEAD = 700  # allocator, planner and subgraph objects
PER_TENSOR = 24  # TfLiteEvalTensor, constants included
PER_OP = 150  # NodeAndRegistration (64) + kernel OpData and parsed options (~86 on average)
PER_CHANNEL = 8  # per-channel output multiplier and shift of conv, depthwise and FC kernels
PER_IO_TENSOR = 64  # persistent TfLiteTensor of each model input and output
PER_QUANTIZED_IO = 32  # ... and its quantization parameters
PER_SCRATCH = 8  # scratch buffer handle
PLANNING_PER_TENSOR = 40  # temporary AllocationInfo while planning
PLANNING_PER_BUFFER = 40  # GreedyMemoryPlanner working memory per planned buffer
PLANNING_PER_REQUEST = 16  # scratch requests kept in the head, room for 12 more per op
CHANNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
INT32_SCRATCH_OPS = {"MEAN", "SUM"}  # int8 / int16 reductions accumulate in an int32 scratch buffer


def static_problems(graph: ModelGraph) -> list[str]:
    """Why TFLite Micro cannot run the graph (or should not, on an MCU), from the file alone."""
    if graph.format != "tflite":
        return ["TFLite Micro runs .tflite files only"]
    problems = []
    unsupported: dict[str, int] = {}
    for op in graph.ops:
        if op.type not in TFLM_BUILTIN_OPS:
            unsupported[op.type] = unsupported.get(op.type, 0) + 1
    for name, count in unsupported.items():
        kind = "custom op" if name.startswith("CUSTOM:") else "op"
        problems.append(f"unsupported {kind} {name.removeprefix('CUSTOM:')} (x{count}): TFLite Micro has no kernel")
    if graph.precision == "int8":
        # (De)quantize at the model's edges is fine; an op reading or writing float32 computes in float.
        float_ops = {
            op.type
            for op in graph.ops
            if op.type not in {"QUANTIZE", "DEQUANTIZE"}
            and any(t >= 0 and graph.tensors[t].dtype == "float32" for t in [*op.inputs, *op.outputs])
        }
        if float_ops:
            problems.append(f"float32 compute in an int8 model: {', '.join(sorted(float_ops))}")
    return problems


def tflm_problems(path: str | Path, run_interpreter: bool = True) -> list[str]:
    """What stops TFLite Micro from running the `.tflite` at `path`; [] when nothing does.

    Unsupported ops and float compute in an int8 model come from the file; with
    `run_interpreter` and tflite-micro installed, the model is also loaded and invoked once in it (in a
    child process), which catches kernel limits the op list cannot (e.g. a 6-D BROADCAST_TO)."""
    graph = read_graph(path)
    problems = static_problems(graph)
    if problems or not run_interpreter:
        return problems
    from edgekd.export import tflm_measure

    if tflm_measure.available():
        arena = max(4 * arena_estimate(graph)["estimate"], 1 << 20)
        error = tflm_measure.run_error(graph.path, arena, len(graph.inputs))
        if error:
            problems.append(f"tflite-micro cannot run it: {error}")
    return problems


def channel_count(graph: ModelGraph) -> int:
    return sum(graph.tensors[op.outputs[0]].shape[-1] for op in graph.ops if op.type in CHANNEL_OPS and op.outputs)


def planned_buffers(graph: ModelGraph) -> list[Buffer]:
    """Activation tensors with their lifetimes, then the scratch buffers of int8 reductions."""
    sizes = {i: graph.tensors[i].nbytes or 0 for i in graph.activations}
    buffers = lifetimes([(op.inputs, op.outputs) for op in graph.ops], graph.inputs, graph.outputs, sizes)
    for step, op in enumerate(graph.ops, start=1):
        if op.type in INT32_SCRATCH_OPS and graph.tensors[op.inputs[0]].quantized:
            buffers.append(Buffer(4 * graph.tensors[op.outputs[0]].elements, step, step))
    return buffers


def arena_estimate(graph: ModelGraph) -> dict:
    """The TFLM arena in bytes (`estimate`) and its parts; see the module docstring for the formula."""
    buffers = planned_buffers(graph)
    planned, _ = greedy_plan(buffers)
    scratch = sum(1 for b in buffers if b.tensor < 0)
    io = [*graph.inputs, *graph.outputs]
    io_bytes = PER_IO_TENSOR * len(io) + PER_QUANTIZED_IO * sum(graph.tensors[t].quantized for t in io)
    persistent = (
        FIXED_OVERHEAD
        + PER_TENSOR * len(graph.tensors)
        + PER_OP * len(graph.ops)
        + PER_CHANNEL * channel_count(graph)
        + PER_SCRATCH * scratch
        + io_bytes
    )
    planning = (
        persistent
        - io_bytes
        + PLANNING_PER_TENSOR * (len(graph.tensors) + scratch)
        + PLANNING_PER_BUFFER * len(buffers)
        + PLANNING_PER_REQUEST * (scratch + 12)
    )
    return {
        "estimate": max(planned + persistent, planning),
        "planned_activations": planned,
        "runtime_overhead": persistent,
        "planning_phase": planning,
    }
