"""Run an exported model file in its own runtime: `.onnx` in onnxruntime, `.tflite` in ai-edge-litert (or the
older `tflite_runtime`). Torch-free: devices, export verification and `edgekd bench` all call these.

Both backends take and return float32 arrays in the model's training layout (NCHW images, NCHW or flat
outputs); the TFLite backend transposes NHWC tensors and quantizes / dequantizes int8 tensors itself, so the
caller never sees what the file stores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError


class ModelFileError(EdgeKDError):
    """A model file that is missing, corrupt or of the wrong kind."""


def _require_file(path: Path, suffix: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix != suffix:
        raise ModelFileError(f"{path}: expected a {suffix} file")
    return path


class OnnxBackend:
    """onnxruntime on the CPU; one input, every output returned."""

    format = "onnx"

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        self.path = _require_file(path, ".onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for corrupt graphs
            raise ModelFileError(f"{self.path}: onnxruntime cannot load it: {error}") from error
        self.input = self.session.get_inputs()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.runtime = f"onnxruntime {ort.__version__}"

    @property
    def input_shape(self) -> list:
        return list(self.input.shape)

    def describe(self) -> dict:
        """Input and output tensors as the manifest records them."""

        def tensor(t, layout_4d: str = "NCHW") -> dict:
            layout = layout_4d if len(t.shape) == 4 else "NC"
            dtype = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}[t.type]
            return {"name": t.name, "shape": list(t.shape), "dtype": dtype, "layout": layout, "quantization": None}

        return {"input": tensor(self.input), "outputs": [tensor(o) for o in self.session.get_outputs()]}

    def native_input(self, values: np.ndarray) -> np.ndarray | None:
        """Float input values as the input tensor takes them (float32, element by element), or None when
        `run_native` does not apply (not a float image input)."""
        return values if self.input.type == "tensor(float)" and len(self.input.shape) == 4 else None

    def run_native(self, sample: np.ndarray) -> list[np.ndarray]:
        """One (1, H, W, C) input of `native_input` values: laid out NCHW, then `run`."""
        return self.run(sample.transpose(0, 3, 1, 2))

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        expected = self.input.shape
        fixed = [(i, d) for i, d in enumerate(expected) if isinstance(d, int)]
        if x.ndim != len(expected) or any(x.shape[i] != d for i, d in fixed):
            raise ModelFileError(f"{self.path}: input of shape {tuple(x.shape)}, the model takes {tuple(expected)}")
        return self.session.run(self.output_names, {self.input.name: np.ascontiguousarray(x, dtype=np.float32)})


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:  # older Raspberry Pi OS images ship tflite_runtime instead
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """TFLite affine quantization: q = round(x / scale) + zero_point, saturated to the integer type."""
    info = np.iinfo(dtype)
    # One temporary, then in place: at 320x320x3 this made an int8 model's call 0.8 ms (~40 %) faster than
    # chained numpy expressions.
    q = np.divide(x, np.float32(scale), dtype=np.float32)
    np.rint(q, out=q)
    q += zero_point
    np.clip(q, info.min, info.max, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.int32) - zero_point) * scale).astype(np.float32)


class TFLiteBackend:
    """A .tflite interpreter at batch 1 (batches run image by image, as on a device).

    `channels_last` says whether 4-D tensors are stored NHWC (what litert-torch writes for our models); then
    inputs are transposed from NCHW and 4-D outputs back to NCHW.
    """

    format = "tflite"

    def __init__(self, path: str | Path, threads: int = 1, channels_last: bool = True):
        interpreter_class, name = _interpreter_class()
        self.path = _require_file(path, ".tflite")
        try:
            self.interpreter = interpreter_class(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelFileError(f"{self.path}: the TFLite interpreter cannot load it: {error}") from error
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.channels_last = channels_last
        self.runtime = f"{name} {_version(name)}"

    @property
    def input_shape(self) -> list:
        shape = [int(v) for v in self.input["shape"]]
        return [shape[0], shape[3], shape[1], shape[2]] if self.channels_last and len(shape) == 4 else shape

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        scale, zero_point = self.input["quantization"]
        return (float(scale), int(zero_point)) if self.input["dtype"] != np.float32 and scale else None

    def describe(self) -> dict:
        """Input and output tensors as stored in the file (NHWC, int8 with scale / zero point)."""

        def tensor(detail: dict) -> dict:
            shape = [int(v) for v in detail["shape"]]
            scale, zero_point = detail["quantization"]
            quantized = detail["dtype"] != np.float32 and scale
            return {
                "name": detail["name"],
                "shape": shape,
                "dtype": np.dtype(detail["dtype"]).name,
                "layout": ("NHWC" if self.channels_last else "NCHW") if len(shape) == 4 else "NC",
                "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if quantized else None,
            }

        return {"input": tensor(self.input), "outputs": [tensor(d) for d in self.outputs]}

    def _set_input(self, sample: np.ndarray) -> None:
        if self.channels_last and sample.ndim == 4:
            sample = sample.transpose(0, 2, 3, 1)
        expected = tuple(self.input["shape"])
        if sample.shape != expected:
            raise ModelFileError(f"{self.path}: input of shape {sample.shape}, the model takes {expected}")
        quantization = self.input_quantization
        if quantization:
            sample = quantize(sample, *quantization, self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(sample, dtype=self.input["dtype"]))

    def _get_output(self, detail: dict) -> np.ndarray:
        value = self.interpreter.get_tensor(detail["index"])
        scale, zero_point = detail["quantization"]
        if detail["dtype"] != np.float32 and scale:
            value = dequantize(value, scale, zero_point)
        if self.channels_last and value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        return np.asarray(value, dtype=np.float32)

    def native_input(self, values: np.ndarray) -> np.ndarray | None:
        """Float input values as the input tensor stores them (quantized as `run` does; element by element), or
        None when `run_native` does not apply (the input is not a channels-last image)."""
        if not (self.channels_last and len(self.input["shape"]) == 4):
            return None
        quantization = self.input_quantization
        return quantize(values, *quantization, self.input["dtype"]) if quantization else values

    def run_native(self, sample: np.ndarray) -> list[np.ndarray]:
        """One (1, H, W, C) input of `native_input` values, as the file stores it: outputs as `run` gives them."""
        expected = tuple(self.input["shape"])
        if sample.shape != expected or sample.dtype != self.input["dtype"]:
            raise ModelFileError(f"{self.path}: input {sample.dtype} {sample.shape}, the model takes {expected}")
        self.interpreter.set_tensor(self.input["index"], sample)
        self.interpreter.invoke()
        return [self._get_output(d) for d in self.outputs]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        per_sample = []
        for start in range(x.shape[0]):
            self._set_input(x[start : start + 1])
            self.interpreter.invoke()
            per_sample.append([self._get_output(d) for d in self.outputs])
        return [np.concatenate(parts) for parts in zip(*per_sample, strict=True)]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def open_backend(path: str | Path, threads: int = 1, channels_last: bool = True):
    """The backend for a model file, chosen by its suffix."""
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return OnnxBackend(path, threads)
    if suffix == ".tflite":
        return TFLiteBackend(path, threads, channels_last)
    raise ModelFileError(f"{path}: unknown model format {suffix!r}; expected .onnx or .tflite")
