"""A model file as a plain list of tensors and ops, the same shape for `.tflite` (read with the `tflite`
flatbuffer parser) and `.onnx` (read with `onnx`, shapes from its shape inference). Torch-free.

Weights are the constant tensors a layer multiplies with (filters, biases, FC matrices); integer constants
without quantization (pad amounts, shapes, resize sizes) and quantization scales / zero points are not. A
constant shared by several ops counts once: params and weight bytes are what the file stores.
MACs are counted for convolutions, depthwise and transposed convolutions, fully connected layers and
matrix products only; element-wise ops, pooling, resizing and padding count 0 (memory-bound and small).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError
from edgekd.runtime.backends import ModelFileError

FORMATS = {".tflite": "tflite", ".onnx": "onnx"}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: float32, int8, int32, ...
    nbytes: int | None  # None when the shape is unknown
    constant: bool = False
    weight: bool = False
    quantized: bool = False

    @property
    def elements(self) -> int:
        return _elements(self.shape)


@dataclass
class Op:
    type: str  # TFLite builtin name (CONV_2D) or ONNX op type (Conv)
    inputs: list[int]
    outputs: list[int]
    macs: int = 0


@dataclass
class ModelGraph:
    path: Path
    format: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def activations(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors) if not t.constant]

    @property
    def precision(self) -> str:
        """int8 when any activation is stored as a quantized integer (TFLite) or the graph quantizes (ONNX)."""
        if any(t.quantized for t in self.tensors if not t.constant):
            return "int8"
        if self.format == "onnx" and any(op.type in _QUANTIZE_OPS for op in self.ops):
            return "int8"
        return "fp32"

    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(op.type for op in self.ops).most_common())


def read_graph(path: str | Path) -> ModelGraph:
    """The graph of a `.tflite` or `.onnx` file; ModelFileError (exit code 2 in the CLI) when it is missing,
    of another kind or not parseable."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix not in FORMATS:
        raise ModelFileError(f"{path}: unknown model format {path.suffix!r}; expected .tflite or .onnx")
    return _read_tflite(path) if path.suffix == ".tflite" else _read_onnx(path)


def _elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


_BYTES = {"float32": 4, "float16": 2, "float64": 8, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4}
_BYTES |= {"uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "int4": 0.5, "complex64": 8}


def _nbytes(shape, dtype: str) -> int | None:
    if any(d < 0 for d in shape):
        return None
    return int(np.ceil(_elements(shape) * _BYTES.get(dtype, 4)))


def _macs(kind: str, graph_tensors: list[Tensor], inputs: list[int], outputs: list[int]) -> int:
    """Multiply-accumulates of one op from its shapes; `kind` says where the reduction axes are."""

    def shape(i):
        return graph_tensors[i].shape if i >= 0 else ()

    out = _elements(shape(outputs[0])) if outputs and all(d >= 0 for d in shape(outputs[0])) else 0
    if kind == "conv":  # TFLite [cout, kh, kw, cin]; ONNX [cout, cin/g, kh, kw]: the same product
        return out * _elements(shape(inputs[1])[1:])
    if kind == "depthwise":  # TFLite [1, kh, kw, cout]
        return out * _elements(shape(inputs[1])[1:3])
    if kind == "fc":  # TFLite FULLY_CONNECTED weight [out, in]
        return out * (shape(inputs[1])[-1] if shape(inputs[1]) else 0)
    if kind == "matmul":  # reduce over the last axis of the first operand (Gemm without transA)
        return out * (shape(inputs[0])[-1] if shape(inputs[0]) else 0)
    if kind == "tconv_tflite":  # inputs: output shape, weight [cout, kh, kw, cin], data
        return _elements(shape(inputs[2])) * _elements(shape(inputs[1])[:3])
    if kind == "tconv_onnx":  # weight [cin, cout/g, kh, kw]
        return _elements(shape(inputs[0])) * _elements(shape(inputs[1])[1:])
    return 0


# ---- TFLite ---------------------------------------------------------------------------------------------

_TFLITE_MACS = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fc",
    "BATCH_MATMUL": "matmul",
    "TRANSPOSE_CONV": "tconv_tflite",
}


def _tflite_module():
    try:
        import tflite
    except ImportError as error:
        raise EdgeKDError("inspecting .tflite files needs the `tflite` package: pip install tflite") from error
    return tflite


def _read_tflite(path: Path) -> ModelGraph:
    tflite = _tflite_module()
    data = path.read_bytes()
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelFileError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        return _parse_tflite(tflite, tflite.Model.GetRootAsModel(data, 0), path)
    except Exception as error:  # a damaged flatbuffer fails in many ways: index, struct or unicode errors
        raise ModelFileError(f"{path}: corrupt TFLite file ({type(error).__name__}: {error})") from error


def _parse_tflite(tflite, model, path: Path) -> ModelGraph:
    type_names = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    subgraph = model.Subgraphs(0)
    tensors = []
    for i in range(subgraph.TensorsLength()):
        t = subgraph.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = type_names.get(t.Type(), "unknown")
        buffer = model.Buffers(t.Buffer())
        constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)
        q = t.Quantization()
        quantized = q is not None and q.ScaleLength() > 0 and dtype.startswith(("int", "uint"))
        weight = constant and (dtype.startswith("float") or quantized)
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"t{i}"
        tensors.append(Tensor(name, shape, dtype, _nbytes(shape, dtype), constant, weight, quantized))
    ops = []
    for k in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = tflite.BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'?').decode()}"
        inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(Op(name, inputs, outputs, _macs(_TFLITE_MACS.get(name, ""), tensors, inputs, outputs)))
    notes = [f"{model.SubgraphsLength() - 1} more subgraph(s) not analysed"] if model.SubgraphsLength() > 1 else []
    inputs = [int(i) for i in subgraph.InputsAsNumpy()]
    outputs = [int(i) for i in subgraph.OutputsAsNumpy()]
    return ModelGraph(path, "tflite", tensors, ops, inputs, outputs, notes)


# ---- ONNX -----------------------------------------------------------------------------------------------

_ONNX_MACS = {
    "Conv": "conv",
    "ConvInteger": "conv",
    "ConvTranspose": "tconv_onnx",
    "Gemm": "matmul",
    "MatMul": "matmul",
    "MatMulInteger": "matmul",
}
_QUANTIZE_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger"}
# Which inputs of a layer are its weights (through a DequantizeLinear in QDQ models).
_ONNX_WEIGHT_INPUTS = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2, 3, 4),
    "PRelu": (1,),
    "LayerNormalization": (1, 2),
    "InstanceNormalization": (1, 2),
}


def _read_onnx(path: Path) -> ModelGraph:
    try:
        import onnx
    except ImportError as error:
        raise EdgeKDError("inspecting .onnx files needs the `onnx` package: pip install onnx") from error
    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        return _parse_onnx(onnx, model, path)
    except Exception as error:  # protobuf DecodeError, shape inference and checker errors
        raise ModelFileError(f"{path}: corrupt ONNX file ({type(error).__name__}: {error})") from error


def _parse_onnx(onnx, model, path: Path) -> ModelGraph:
    graph = model.graph
    index: dict[str, int] = {}
    tensors: list[Tensor] = []

    def add(name: str, shape, elem_type: int, constant: bool) -> None:
        if name in index or not name:
            return
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name if elem_type else "unknown"
        index[name] = len(tensors)
        tensors.append(Tensor(name, tuple(shape), dtype, _nbytes(shape, dtype), constant))

    def dims(value) -> list[int]:
        # A symbolic batch axis counts as 1: inspection describes one inference.
        return [d.dim_value if d.HasField("dim_value") else (1 if k == 0 else -1) for k, d in enumerate(value)]

    for init in graph.initializer:
        add(init.name, list(init.dims), init.data_type, True)
    for value in [*graph.input, *graph.value_info, *graph.output]:
        t = value.type.tensor_type
        add(value.name, dims(t.shape.dim) if t.HasField("shape") else [-1], t.elem_type, False)

    ops = []
    for node in graph.node:
        for name in node.output:  # outputs without inferred shapes stay unknown
            add(name, [-1], 0, False)
        inputs = [index[n] if n in index else -1 for n in node.input]
        outputs = [index[n] for n in node.output if n]
        if node.op_type == "Constant" or (inputs and all(i >= 0 and tensors[i].constant for i in inputs)):
            for o in outputs:  # folded at load: Constant nodes, DequantizeLinear of a weight
                tensors[o].constant = True
        ops.append(Op(node.op_type, inputs, outputs))
    _mark_onnx_weights(tensors, ops)
    for op in ops:
        op.macs = _macs(_ONNX_MACS.get(op.type, ""), tensors, op.inputs, op.outputs)
    inputs = [index[v.name] for v in graph.input if not tensors[index[v.name]].constant]
    return ModelGraph(path, "onnx", tensors, ops, inputs, [index[v.name] for v in graph.output])


def _mark_onnx_weights(tensors: list[Tensor], ops: list[Op]) -> None:
    """A weight is a constant a layer reads at a weight position, or the int8 source of its DequantizeLinear."""
    producer = {o: op for op in ops for o in op.outputs}
    for op in ops:
        for position in _ONNX_WEIGHT_INPUTS.get(op.type, ()):
            if position >= len(op.inputs) or op.inputs[position] < 0 or not tensors[op.inputs[position]].constant:
                continue
            source = op.inputs[position]
            dequantize = producer.get(source)
            if dequantize is not None and dequantize.type == "DequantizeLinear":
                source = dequantize.inputs[0]
            tensors[source].weight = True
    for t in tensors:
        if t.weight and t.dtype.startswith(("int", "uint")):
            t.quantized = True
