"""An int8 `.tflite` file as plain tensors (shape, dtype, quantization, constant data) and ops (builtin name,
inputs, outputs, options as a dict), read with the `tflite` flatbuffer parser. What the compiler lowers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.export.model_graph import _tflite_module
from edgekd.runtime.backends import ModelFileError

_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64}
_DTYPES |= {"FLOAT32": np.float32, "BOOL": np.bool_}

# builtin option tables: the option class and the fields the compiler reads
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", ["Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor"]),
    "DEPTHWISE_CONV_2D": (
        "DepthwiseConv2DOptions",
        ["Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "DepthMultiplier"],
    ),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ["Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth"]),
    "MAX_POOL_2D": ("Pool2DOptions", ["Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth"]),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ["KeepNumDims"]),
    "ADD": ("AddOptions", []),
    "CONCATENATION": ("ConcatenationOptions", ["Axis"]),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", ["AlignCorners", "HalfPixelCenters"]),
    "SUM": ("ReducerOptions", ["KeepDims"]),
    "MEAN": ("ReducerOptions", ["KeepDims"]),
}
_FUSED = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass
class QTensor:
    index: int
    shape: tuple[int, ...]
    dtype: type
    scale: np.ndarray  # float32, one per tensor or per channel; empty when not quantized
    zero_point: np.ndarray  # int64
    data: np.ndarray | None = None  # constant tensors only

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class QOp:
    type: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class QModel:
    path: Path
    tensors: list[QTensor]
    ops: list[QOp]
    inputs: list[int]
    outputs: list[int]


def read_model(path: str | Path) -> QModel:
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    tflite = _tflite_module()
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelFileError(f"{path}: not a TFLite flatbuffer")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ModelFileError(f"{path}: {model.SubgraphsLength()} subgraphs; the compiler handles exactly one")
    graph = model.Subgraphs(0)
    types = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    tensors = [_tensor(tflite, model, graph.Tensors(i), i, types, data) for i in range(graph.TensorsLength())]
    ops = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = tflite.BUILTIN_OPCODE2NAME.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(QOp(name, inputs, outputs, _options(tflite, op, name)))
    return QModel(path, tensors, ops, [int(i) for i in graph.InputsAsNumpy()], [int(i) for i in graph.OutputsAsNumpy()])


def _tensor(tflite, model, t, index: int, types: dict, file_bytes: bytes) -> QTensor:
    dtype = _DTYPES.get(types.get(t.Type(), ""), np.uint8)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    q = t.Quantization()
    quantized = q is not None and q.ScaleLength() > 0
    scale = np.asarray(q.ScaleAsNumpy(), np.float32) if quantized else np.zeros(0, np.float32)
    zero = np.asarray(q.ZeroPointAsNumpy(), np.int64) if quantized and q.ZeroPointLength() else np.zeros(0, np.int64)
    buffer = model.Buffers(t.Buffer())
    raw = None
    if buffer is not None and buffer.DataLength():
        raw = buffer.DataAsNumpy().tobytes()
    elif buffer is not None and buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
        raw = file_bytes[buffer.Offset() : buffer.Offset() + buffer.Size()]
    data = np.frombuffer(raw, dtype=dtype).reshape(shape) if raw is not None else None
    return QTensor(index, shape, dtype, scale, zero, data)


def _options(tflite, op, name: str) -> dict:
    if name not in _OPTIONS or op.BuiltinOptions() is None:
        return {}
    cls_name, fields = _OPTIONS[name]
    table = op.BuiltinOptions()
    options = getattr(tflite, cls_name)()
    options.Init(table.Bytes, table.Pos)
    values = {f: int(getattr(options, f)()) for f in fields}
    if hasattr(options, "FusedActivationFunction"):
        values["activation"] = _FUSED.get(int(options.FusedActivationFunction()), "?")
    return values
