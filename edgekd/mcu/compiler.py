"""`edgekd compile`: an int8 `.tflite` to C (`model.c`) plus a description of it (`model.json`: layers with
their MACs, arena bytes, weight bytes, the input and output quantization) that the host side reads back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.mcu.codegen import generate_c
from edgekd.mcu.lower import lower
from edgekd.mcu.plan import plan_memory
from edgekd.mcu.tflite_model import read_model

DESCRIPTION_SCHEMA = "edgekd-mcu-model/1"


@dataclass
class CompiledModel:
    source: Path
    c_file: Path
    description: dict

    @property
    def arena_bytes(self) -> int:
        return self.description["arena_bytes"]


def _io(tensor) -> dict:
    return {
        "tensor": tensor.index,
        "shape": list(tensor.shape),
        "bytes": tensor.nbytes,
        "scale": float(tensor.scale[0]) if tensor.scale.size else None,
        "zero_point": int(tensor.zero_point[0]) if tensor.zero_point.size else 0,
    }


def compile_model(
    model_path: str | Path, out_dir: str | Path, name: str | None = None, expose_all: bool = False
) -> CompiledModel:
    """`expose_all` makes every layer's output a model output (kept to the end): tests compare each layer."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = read_model(model_path)
    program = lower(model)
    if expose_all:
        program.outputs = list(dict.fromkeys([layer.output for layer in program.layers] + program.outputs))
    plan = plan_memory(program)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    name = name or model_path.name.split(".")[0]
    text = generate_c(program, plan, name, f"{model_path.name} (sha256 {digest[:16]})")
    out_dir.mkdir(parents=True, exist_ok=True)
    c_file = out_dir / "model.c"
    c_file.write_text(text)
    # the portable build's constants; a build with EKD_WIDE_WEIGHTS (Cortex-M4) holds int16 copies of some conv
    # weights in place of their int8 ones: `widened_extra_bytes` more
    weight_bytes = sum(
        int(np.asarray(a).nbytes) for layer in program.layers for key, a in layer.arrays.items() if key != "filter16"
    )
    widened = [layer.arrays["filter16"] for layer in program.layers if "filter16" in layer.arrays]
    description = {
        "schema": DESCRIPTION_SCHEMA,
        "name": name,
        "source": str(model_path),
        "sha256": digest,
        "arena_bytes": plan.arena_bytes,
        "liveness_peak_bytes": plan.liveness_peak,
        "weight_bytes": weight_bytes,
        "widened_extra_bytes": sum(int(w.nbytes) // 2 for w in widened),
        "macs": sum(layer.macs for layer in program.layers),
        "input": _io(model.tensors[program.inputs[0]]),
        "outputs": [_io(model.tensors[t]) for t in program.outputs],
        "layers": [{"name": layer.name, "kind": layer.kind, "macs": layer.macs} for layer in program.layers],
    }
    (out_dir / "model.json").write_text(json.dumps(description, indent=1) + "\n")
    return CompiledModel(model_path, c_file, description)
