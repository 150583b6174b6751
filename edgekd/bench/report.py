"""The benchmark report: one JSON document per (model, device, run) that `edgekd bench`, the device agents and the
collector all write and read. Versioned by `schema` (`edgekd-report/1`), validated with JSON Schema; a bad report
is rejected naming the failing field (e.g. `latency.p50_ms`). Torch-free.

Fields (times in ms, sizes in bytes, timestamps ISO-8601 UTC):

- `schema`: "edgekd-report/1"; `report_id`: a UUID; `status`: "ok" or "error" (then `error` holds the message and
  only `device`, `model.file`, the timestamps and `environment` are required: a model that failed to load on a
  device is a result too).
- `device`: `id` (free text, default the host name) and `kind` (host, rpi, mcu, jetson, phone, other).
- `model`: `file` (name), `sha256`, `format` (onnx, tflite, c), `precision` (fp32, int8, fp16, unknown), `task`
  (classify, detect), `size_bytes`, `verified` (an `edgekd export` manifest vouched for the file).
- `runtime`: `name` and `version` (e.g. onnxruntime 1.32.0); `threads`.
- `started_at`, `finished_at`.
- `init_ms`: loading the model (engine construction); `first_inference_ms`: the first call, before warm-up.
- `latency`: `runs`, `warmup`, `min_ms`, `mean_ms`, `p50_ms`, `p95_ms`, `p99_ms`, `std_ms`, `fps` (1000 / p50) of
  the model call alone on a prepared input; `end_to_end` (optional): the same for pre-processing + model +
  post-processing of one image.
- `memory`: `peak_rss_bytes` (the process's peak resident memory, so it includes the interpreter and libraries),
  `load_delta_bytes` (resident memory added by loading the model) and `runs_delta_bytes` (added by the runs);
  deltas are null where the OS does not report current RSS.
- `accuracy` (optional, when a dataset was given): `dataset`, `split`, `images`, `metrics` ({name: value in 0..1},
  e.g. top1, or precision, recall, map50, map) and `primary` (the headline metric's name).
- `environment`: `python`, `os`, `machine`, `cpu`, `cpu_count`, `edgekd`, `numpy`.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path

import jsonschema

from edgekd.errors import EdgeKDError

REPORT_VERSION = "edgekd-report/1"
DEVICE_KINDS = ("host", "rpi", "mcu", "jetson", "phone", "other")


class ReportError(EdgeKDError):
    """A report that does not follow the schema."""


_UTC_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$"}
_MS = {"type": "number", "minimum": 0}
_LATENCY = {
    "type": "object",
    "required": ["runs", "min_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "std_ms", "fps"],
    "properties": {
        "runs": {"type": "integer", "minimum": 1},
        "warmup": {"type": "integer", "minimum": 0},
        **{key: _MS for key in ("min_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "std_ms")},
        "fps": {"type": "number", "exclusiveMinimum": 0},
    },
}
_OPTIONAL_BYTES = {"type": ["integer", "null"]}  # a delta may be negative (the allocator gave memory back)
_OK_REQUIRES = [
    "runtime",
    "threads",
    "init_ms",
    "first_inference_ms",
    "latency",
    "memory",
]
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "report_id", "status", "device", "model", "started_at", "finished_at", "environment"],
    "properties": {
        "schema": {"const": REPORT_VERSION},
        "report_id": {"type": "string", "pattern": r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
        "status": {"enum": ["ok", "error"]},
        "error": {"type": "string", "minLength": 1},
        "device": {
            "type": "object",
            "required": ["id", "kind"],
            "properties": {"id": {"type": "string", "minLength": 1}, "kind": {"enum": list(DEVICE_KINDS)}},
        },
        "model": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "minLength": 1},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "format": {"enum": ["onnx", "tflite", "c"]},
                "precision": {"enum": ["fp32", "int8", "fp16", "unknown"]},
                "task": {"enum": ["classify", "detect"]},
                "size_bytes": {"type": "integer", "minimum": 1},
                "verified": {"type": "boolean"},
            },
        },
        "runtime": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": "string"}},
        },
        "threads": {"type": "integer", "minimum": 1},
        "started_at": _UTC_TIME,
        "finished_at": _UTC_TIME,
        "init_ms": _MS,
        "first_inference_ms": _MS,
        "latency": _LATENCY,
        "end_to_end": _LATENCY,
        "memory": {
            "type": "object",
            "required": ["peak_rss_bytes", "load_delta_bytes", "runs_delta_bytes"],
            "properties": {
                "peak_rss_bytes": {"type": "integer", "minimum": 1},
                "load_delta_bytes": _OPTIONAL_BYTES,
                "runs_delta_bytes": _OPTIONAL_BYTES,
            },
        },
        "accuracy": {
            "type": "object",
            "required": ["dataset", "split", "images", "metrics", "primary"],
            "properties": {
                "dataset": {"type": "string", "minLength": 1},
                "split": {"type": "string"},
                "images": {"type": "integer", "minimum": 1},
                "metrics": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "primary": {"type": "string"},
            },
        },
        "environment": {
            "type": "object",
            "required": ["python", "os", "machine", "cpu"],
            "properties": {key: {"type": "string"} for key in ("python", "os", "machine", "cpu", "edgekd", "numpy")}
            | {"cpu_count": {"type": ["integer", "null"]}},
        },
    },
    "allOf": [
        {
            "if": {"properties": {"status": {"const": "ok"}}},
            "then": {
                "required": _OK_REQUIRES,
                "properties": {"model": {"required": ["sha256", "format", "precision", "task", "size_bytes"]}},
            },
        },
        {"if": {"properties": {"status": {"const": "error"}}}, "then": {"required": ["error"]}},
    ],
}


def _field(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":  # name the missing field itself, not its parent
        missing = [name for name in error.validator_value if name not in error.instance]
        path += missing[:1]
    return ".".join(path) or "(top level)"


def _check_order(report: dict) -> str | None:
    """What JSON Schema cannot say: percentiles ascend, and a run finishes after it starts."""
    for key in ("latency", "end_to_end"):
        stats = report.get(key)
        if stats:
            order = ("min_ms", "p50_ms", "p95_ms", "p99_ms")
            for low, high in zip(order, order[1:], strict=False):
                if stats[low] > stats[high] * (1 + 1e-9):
                    return f"field {key}.{high}: {stats[high]} is below {key}.{low} {stats[low]}"
    started = datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    if datetime.fromisoformat(report["finished_at"].replace("Z", "+00:00")) < started:
        return "field finished_at: before started_at"
    return None


@functools.cache
def _fast_check():
    """A compiled validator (fastjsonschema, ~15x faster: the collector checks thousands of reports a second), or
    None where it is not installed. It only says yes or no; jsonschema names the field of a rejected report."""
    try:
        import fastjsonschema
    except ImportError:
        return None
    return fastjsonschema.compile({k: v for k, v in SCHEMA.items() if k != "$schema"})


def _passes_fast_check(report: dict) -> bool:
    check = _fast_check()
    if check is None:
        return False
    try:
        check(report)
        return True
    except Exception:  # JsonSchemaException, or a type the generated code did not expect
        return False


def validate_report(report: dict, where: str = "report") -> dict:
    """`report` if it follows the schema; otherwise ReportError naming the field, e.g. `latency.p50_ms`."""
    if not _passes_fast_check(report):
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(report))
        if error is not None:
            raise ReportError(f"{where}: field {_field(error)}: {error.message}")
    problem = _check_order(report)
    if problem:
        raise ReportError(f"{where}: {problem}")
    return report


# ------------------------------------------------------------------ building a report


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect_device_kind() -> str:
    """rpi / jetson from the device tree (Linux boards), else host."""
    try:
        model = Path("/proc/device-tree/model").read_text(errors="replace")
    except OSError:
        return "host"
    if "Raspberry Pi" in model:
        return "rpi"
    return "jetson" if "Jetson" in model else "host"


def environment_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    try:
        edgekd_version = version("edgekd")
    except PackageNotFoundError:
        edgekd_version = "unknown"
    return {
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "edgekd": edgekd_version,
        "numpy": numpy.__version__,
    }


def split_runtime(runtime: str) -> dict:
    """'onnxruntime 1.32.0' -> {"name": "onnxruntime", "version": "1.32.0"}."""
    name, _, version = runtime.partition(" ")
    return {"name": name, "version": version}


def _base(device_id: str | None, device_kind: str | None, model: dict, started_at: str, finished_at: str) -> dict:
    return {
        "schema": REPORT_VERSION,
        "report_id": str(uuid.uuid4()),
        "device": {"id": device_id or socket.gethostname(), "kind": device_kind or detect_device_kind()},
        "model": model,
        "started_at": started_at,
        "finished_at": finished_at,
        "environment": environment_info(),
    }


def new_report(
    *,
    model: dict,
    runtime: str | dict,
    threads: int,
    started_at: str,
    finished_at: str,
    init_ms: float,
    first_inference_ms: float,
    latency: dict,
    memory: dict,
    accuracy: dict | None = None,
    end_to_end: dict | None = None,
    device_id: str | None = None,
    device_kind: str | None = None,
) -> dict:
    """A validated report of a successful measurement; device and environment default to this machine."""
    report = _base(device_id, device_kind, model, started_at, finished_at)
    report.update(
        status="ok",
        runtime=split_runtime(runtime) if isinstance(runtime, str) else runtime,
        threads=threads,
        init_ms=init_ms,
        first_inference_ms=first_inference_ms,
        latency=latency,
        memory=memory,
    )
    if end_to_end is not None:
        report["end_to_end"] = end_to_end
    if accuracy is not None:
        report["accuracy"] = accuracy
    return validate_report(report)


def failed_report(
    *,
    model: dict,
    error: str,
    started_at: str,
    finished_at: str,
    device_id: str | None = None,
    device_kind: str | None = None,
) -> dict:
    """A validated report of a model that could not be measured (it did not load, or its run failed)."""
    report = _base(device_id, device_kind, model, started_at, finished_at)
    report.update(status="error", error=error or "unknown error")
    return validate_report(report)


def report_file_name(report: dict) -> str:
    """`model.int8.tflite` -> `model.int8.tflite.<report id>.json`: unique, and sorted beside its model's name."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", report["model"]["file"])
    return f"{stem}.{report['report_id']}.json"
