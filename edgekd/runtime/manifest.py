"""The model manifest: the JSON written next to every exported model, read by the runtime on every device.

It says what the file is (format, precision, sha256), how to feed it (input shape, dtype, layout, quantization,
pre-processing), how to read it (outputs, decoding, labels), how good it is (metrics measured at export) and
where it came from (provenance). Versioned by `schema`; validated with JSON Schema, and a bad manifest is
rejected naming the failing field. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema

from edgekd.errors import EdgeKDError

MANIFEST_VERSION = "edgekd-manifest/1"


class ManifestError(EdgeKDError):
    """A manifest that is missing, unreadable, invalid, or that does not match its model file."""


_QUANTIZATION = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["scale", "zero_point"],
            "properties": {"scale": {"type": "number", "exclusiveMinimum": 0}, "zero_point": {"type": "integer"}},
        },
    ]
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "dtype", "quantization"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": ["integer", "string", "null"]}},
        "dtype": {"enum": ["float32", "int8", "uint8"]},
        "layout": {"enum": ["NCHW", "NHWC", "NC"]},
        "quantization": _QUANTIZATION,
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "file", "sha256", "size_bytes", "format", "precision", "task", "input", "outputs"],
    "properties": {
        "schema": {"const": MANIFEST_VERSION},
        "file": {"type": "string", "minLength": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "size_bytes": {"type": "integer", "minimum": 1},
        "format": {"enum": ["onnx", "tflite", "c"]},
        "precision": {"enum": ["fp32", "int8"]},
        "task": {"enum": ["classify", "detect"]},
        "input": {
            "allOf": [
                _TENSOR,
                {
                    "type": "object",
                    "required": ["layout", "preprocessing"],
                    "properties": {
                        "preprocessing": {
                            "type": "object",
                            "required": ["resize", "color", "scale", "mean", "std"],
                            "properties": {
                                "resize": {"enum": ["letterbox", "stretch"]},
                                "color": {"enum": ["gray", "rgb"]},
                                "scale": {"type": "number"},
                                "mean": {"type": "array", "items": {"type": "number"}},
                                "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
                            },
                        }
                    },
                },
            ]
        },
        "outputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "decoding": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["softmax", "centernet"]}},
        },
        "labels": {"type": "array", "items": {"type": "string"}},
        "metrics": {"type": "object"},
        "provenance": {"type": "object"},
    },
}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(model_path: str | Path) -> Path:
    """`model.tflite` -> `model.tflite.json`: one manifest per file, even when formats share a stem."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def validate_manifest(manifest: dict, where: str = "manifest") -> dict:
    """`manifest` if it follows the schema; otherwise ManifestError naming the field, e.g. `input.dtype`."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(manifest))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ManifestError(f"{where}: field {field}: {error.message}")
    return manifest


def write_manifest(model_path: str | Path, manifest: dict) -> Path:
    """Fill in file name, size and sha256 from the model file, validate, write beside it atomically."""
    model_path = Path(model_path)
    manifest = {
        "schema": MANIFEST_VERSION,
        **manifest,
        "file": model_path.name,
        "sha256": sha256_file(model_path),
        "size_bytes": model_path.stat().st_size,
    }
    path = manifest_path(model_path)
    validate_manifest(manifest, str(path))
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    partial.replace(path)
    return path


def read_manifest(model_path: str | Path, check_sha256: bool = True) -> dict:
    """The validated manifest of a model file; with `check_sha256` the file must be the one it describes."""
    model_path = Path(model_path)
    path = manifest_path(model_path)
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest beside {model_path.name}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not valid JSON ({error})") from error
    validate_manifest(manifest, str(path))
    if check_sha256 and sha256_file(model_path) != manifest["sha256"]:
        raise ManifestError(f"{model_path}: sha256 differs from its manifest {path.name}: file changed or corrupt")
    return manifest
