"""ONNX export (torch.onnx, opset 17, dynamic batch) and static int8 quantization with onnxruntime (QDQ,
per-channel weights, MinMax calibration on the validation images)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgekd.runtime.backends import OnnxBackend

OPSET = 17


def export_onnx(model: torch.nn.Module, example: np.ndarray, path: Path) -> Path:
    """fp32 ONNX with input `input`, output `output` and a dynamic batch axis."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return path


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of inputs, one sample per call."""

    def __init__(self, name: str, samples: np.ndarray):
        self.name, self.samples, self.position = name, samples, 0

    def get_next(self):
        if self.position >= len(self.samples):
            return None
        self.position += 1
        return {self.name: self.samples[self.position - 1 : self.position]}

    def rewind(self):
        self.position = 0


def quantize_onnx(source: Path, target: Path, calibration: np.ndarray, activations: str = "int8") -> Path:
    """Static QDQ int8: per-channel int8 weights, `activations` int8 (s8s8) or uint8 (u8s8)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _Reader("input", calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return target


def median_ms(path: Path, sample: np.ndarray, runs: int = 30, threads: int = 1) -> float:
    backend = OnnxBackend(path, threads)
    times = []
    for i in range(runs + 5):
        started = time.perf_counter()
        backend.run(sample[:1])
        if i >= 5:
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def quantize_onnx_fastest(source: Path, target: Path, calibration: np.ndarray) -> dict:
    """Quantize both ways (u8s8, s8s8), keep the one faster on this CPU, and say what was measured.

    Which is faster depends on the CPU's integer instructions (VNNI, NEON dot product), so it is measured
    rather than assumed; re-export on the target board to choose for it.
    """
    timings = {}
    for activations in ("uint8", "int8"):
        candidate = target.with_name(f"{target.stem}.{activations}{target.suffix}")
        quantize_onnx(source, candidate, calibration, activations)
        timings[activations] = (median_ms(candidate, calibration), candidate)
    best = min(timings, key=lambda k: timings[k][0])
    timings[best][1].replace(target)
    for activations, (_, candidate) in timings.items():
        if activations != best:
            candidate.unlink(missing_ok=True)
    return {
        "activations": best,
        "scheme": "u8s8" if best == "uint8" else "s8s8",
        "ms": {("u8s8" if k == "uint8" else "s8s8"): round(v[0], 4) for k, v in timings.items()},
    }
