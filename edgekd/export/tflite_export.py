"""TFLite export without TensorFlow: litert-torch converts the fp32 graph (NHWC input and 4-D outputs, as
microcontrollers and TFLite Micro expect), ai-edge-quantizer makes it full-integer int8 (int8 weights per
channel, int8 activations, int8 input and output tensors) from a calibration set.

Tensor names (long module paths) are stripped: on a 28k-parameter detector they were a third of the file; identical
zero-point vectors are written once (see `_shared_int64_builder`).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgekd.errors import ExportError


def _shared_int64_builder():
    """A flatbuffers Builder that writes each distinct int64 vector once and points every later copy at it.

    Per-channel int8 weights and their int32 biases each carry one int64 zero point per output channel, all 0:
    12 bytes of metadata per channel beside 1 byte per weight, a fifth of a thin detector's int8 file. Flatbuffers
    allow shared vectors (a table holds an offset), so readers (LiteRT, TFLite Micro) see the same model."""
    import flatbuffers

    class SharedInt64Builder(flatbuffers.Builder):
        def __init__(self, size: int):
            super().__init__(size)
            self._int64_vectors: dict[bytes, int] = {}

        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
            if x.dtype != np.int64:
                return super().CreateNumpyVector(x)
            key = x.astype("<i8").tobytes()
            if key not in self._int64_vectors:
                self._int64_vectors[key] = super().CreateNumpyVector(x)
            return self._int64_vectors[key]

    return SharedInt64Builder(1024)


def _compact(path: Path) -> None:
    """Strip tensor names and share identical zero-point vectors; the graph and every value are unchanged."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    flatbuffer_utils.strip_strings(model)
    builder = _shared_int64_builder()
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def _convert(model: torch.nn.Module, example: np.ndarray, path: Path) -> None:
    """fp32 .tflite at batch 1, NHWC input and 4-D outputs, tensor names and signature kept."""
    import litert_torch

    model = model.eval().to(memory_format=torch.contiguous_format)
    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    with torch.no_grad():
        four_d_outputs = [0] if model(x).ndim == 4 else None
    wrapped = litert_torch.to_channel_last_io(model, args=[0], outputs=four_d_outputs).eval()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            litert_torch.convert(wrapped, (x.permute(0, 2, 3, 1).contiguous(),)).export(str(path))
    except Exception as error:  # the converter raises many kinds for an unsupported graph
        raise ExportError(f"{path.name}: litert-torch could not convert the model: {error}") from error


def _global_min_max(qsv: dict, new: dict) -> dict:
    """Running min of mins and max of maxes: the calibration set's true range."""
    if not qsv:
        return new
    return {"min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def _quantize(named: Path, target: Path, calibration: np.ndarray, input_range: tuple[float, float]) -> None:
    """Full-integer int8 (`static_wi8_ai8`) of a converter output that still has its signature.

    Ranges are the calibration set's global min/max (as onnxruntime's MinMax calibrator): ai-edge-quantizer's
    default moving average (0.95) of per-sample ranges under-estimated the logits' range of a classifier by 2x
    and clipped them (top-1 -4.5 points). The input tensor's range is set to `input_range`, every value
    pre-processing can produce, so pixels brighter than any calibration pixel do not saturate."""
    import ai_edge_quantizer as aq
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator

    interpreter = Interpreter(str(named))
    signatures = interpreter.get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    samples = calibration.transpose(0, 2, 3, 1) if calibration.ndim == 4 else calibration
    quantizer = aq.Quantizer(str(named))
    quantizer.load_quantization_recipe(aq.recipe.static_wi8_ai8())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # Quantizer.calibrate() offers no choice of range statistic; its Calibrator does.
        calib = calibrator.Calibrator(str(named), num_threads=1, qsv_update_func=_global_min_max)
        data = {signature: [{input_name: s[None].astype(np.float32)} for s in samples]}
        calib.calibrate(data, quantizer._recipe_manager)
        result = calib.get_model_qsvs()
        tensor = interpreter.get_input_details()[0]["name"]
        low, high = input_range
        result[tensor] = {k: np.full_like(v, low if k == "min" else high) for k, v in result[tensor].items()}
        quantizer.quantize(result).export_model(str(target), overwrite=True)


def export_tflite(
    model: torch.nn.Module,
    calibration: np.ndarray,
    fp32_path: Path,
    int8_path: Path | None = None,
    input_range: tuple[float, float] | None = None,
) -> None:
    """fp32 .tflite and, with `int8_path`, its full-integer int8 version calibrated on `calibration`
    (`input_range`: the (min, max) pre-processing can produce; default the calibration's)."""
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.tflite"
        _convert(model, calibration, named)
        fp32_path.write_bytes(named.read_bytes())
        _compact(fp32_path)
        if int8_path is not None:
            _quantize(named, int8_path, calibration, input_range or (calibration.min(), calibration.max()))
            _compact(int8_path)


def input_clipping(int8_path: Path, input_range: tuple[float, float]) -> dict:
    """The share of the real input range (what pre-processing can produce) that the int8 input cannot hold.

    One quantizer route chose an input scale that clipped inputs above 0.88: every brighter pixel saturated.
    """
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(str(int8_path)).get_input_details()[0]
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    # Half a step of slack: values that round onto the end points are not clipped.
    lost = max(0.0, low - scale / 2 - input_range[0]) + max(0.0, input_range[1] - high - scale / 2)
    return {
        "representable": [float(low), float(high)],
        "expected": [float(v) for v in input_range],
        "clipped_fraction": float(lost / (input_range[1] - input_range[0])),
    }
