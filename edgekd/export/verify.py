"""Verification: an exported file is run in its own runtime and compared with the torch model it came from.

fp32 files must match the torch outputs closely; int8 files are judged by output similarity and by the task
metric on held-out data (the drop the user accepts is `--max-drop`).
"""

from __future__ import annotations

import numpy as np
import torch

from edgekd.runtime.backends import open_backend

# fp32 exports: max |error| relative to the output's range. Exporters matched torch within 1e-5 here.
FP32_TOLERANCE = 1e-3
# int8 exports are judged by the task metric (`--max-drop`); this floor on the worst sample's output cosine only
# catches a broken file (wrong layout, wrong scale: cosine near 0). Healthy int8 files measured 0.96-0.9997.
INT8_MIN_COSINE = 0.9


class ExportedModel:
    """An exported file behind the small part of the nn.Module interface the evaluators use
    (`model(x)`, `eval()`, `train()`, `training`, `input_shape`, `stride`)."""

    training = False

    def __init__(self, path, source: torch.nn.Module, threads: int = 1):
        self.backend = open_backend(path, threads)
        self.input_shape = source.input_shape if hasattr(source, "input_shape") else None
        self.stride = getattr(source, "stride", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.backend.run(np.ascontiguousarray(x.numpy()))[0])

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


@torch.no_grad()
def torch_outputs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    model = model.eval()
    return model(torch.from_numpy(x)).numpy()


def compare(reference: np.ndarray, exported: np.ndarray) -> dict:
    """Max absolute error (also relative to the reference range) and the worst per-sample cosine."""
    if reference.shape != exported.shape:
        return {"shape_mismatch": [list(reference.shape), list(exported.shape)]}
    error = np.abs(reference - exported)
    span = float(reference.max() - reference.min()) or 1.0
    flat_ref, flat_exp = reference.reshape(len(reference), -1), exported.reshape(len(exported), -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_exp, axis=1)
    cosine = (flat_ref * flat_exp).sum(1) / np.maximum(norms, 1e-12)
    worst = int(np.unravel_index(error.argmax(), error.shape)[0])
    return {
        "max_abs_error": float(error.max()),
        "relative_error": float(error.max() / span),
        "min_cosine": float(cosine.min()),
        "worst_sample": worst,
    }


def check(comparison: dict, precision: str) -> str | None:
    """None when the comparison is within tolerance, else why not."""
    if "shape_mismatch" in comparison:
        torch_shape, file_shape = comparison["shape_mismatch"]
        return f"output shape {file_shape} differs from torch's {torch_shape}"
    if precision == "fp32" and comparison["relative_error"] > FP32_TOLERANCE:
        return (
            f"output differs from torch by {comparison['max_abs_error']:.3g} "
            f"({comparison['relative_error']:.2%} of the output range, tolerance {FP32_TOLERANCE:.1%}) "
            f"at sample {comparison['worst_sample']}"
        )
    if precision == "int8" and comparison["min_cosine"] < INT8_MIN_COSINE:
        return (
            f"int8 output cosine similarity with torch {comparison['min_cosine']:.3f} < {INT8_MIN_COSINE} "
            f"at sample {comparison['worst_sample']}"
        )
    return None
