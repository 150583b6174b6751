"""Model files: the architecture spec, the weights and what preprocessing the model expects, in one .pt.

Writes are atomic (temp file + rename) so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import CheckpointError
from edgekd.models.classifiers import build_classifier
from edgekd.models.layer_widths import layer_widths, resize_layers

FORMAT = "edgekd-model/1"


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_model(path: str | Path, model: nn.Module, meta: dict | None = None) -> Path:
    """Save a model built by `build_classifier` with `meta` (classes, normalisation, input shape, metrics)."""
    path = Path(path)
    blob = {"format": FORMAT, "spec": model.spec, "state_dict": model.state_dict(), "meta": meta or {}}
    widths = layer_widths(model)
    with torch.device("meta"):  # shapes only: no memory, and no draw from the RNG a training run relies on
        built = build_from_spec(model.spec)
    if widths != layer_widths(built):
        # Channel pruning made layers narrower than the spec builds them: store the widths to rebuild it.
        blob["layer_widths"] = widths
        blob["feature_channels"] = dict(model.feature_channels)
    atomic_torch_save(blob, path)
    return path


def build_from_spec(spec: dict) -> nn.Module:
    """Rebuild an untrained model from its `.spec` (classifier or detector)."""
    spec = dict(spec)
    arch = spec.pop("arch")
    if arch == "detector":
        from edgekd.models.detectors import build_detector

        return build_detector(**spec)
    return build_classifier(arch, spec.pop("num_classes"), spec.pop("in_channels"), **spec)


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Load a model file written by `save_model`; returns the model in eval mode and its meta dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgekd model file (expected format {FORMAT})")
    model = build_from_spec(blob["spec"])
    try:
        if "layer_widths" in blob:  # a channel-pruned model
            resize_layers(model, blob["layer_widths"], blob["state_dict"])
            model.feature_channels = blob["feature_channels"]
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture {blob['spec']}: {exc}") from exc
    return model.eval(), blob["meta"]
