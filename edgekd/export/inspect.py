"""`edgekd inspect MODEL`: what a `.tflite` or `.onnx` file holds and costs, and whether TFLite Micro can run
it. Torch-free: it reads files only (`model_graph`), plans memory (`memory_plan`), checks TFLM (`tflm`)
and, when tflite-micro is installed, measures the real arena (`tflm_measure`)."""

from __future__ import annotations

from pathlib import Path

from edgekd.export import tflm, tflm_measure
from edgekd.export.memory_plan import lifetimes, liveness_peak
from edgekd.export.model_graph import ModelGraph, read_graph
from edgekd.runtime.manifest import ManifestError, manifest_path, read_manifest


def peak_activations(graph: ModelGraph) -> dict:
    """Peak bytes of activations alive at once (tensor liveness over the op order) and the op it happens at."""
    sizes = {i: graph.tensors[i].nbytes or 0 for i in graph.activations}
    buffers = lifetimes([(op.inputs, op.outputs) for op in graph.ops], graph.inputs, graph.outputs, sizes)
    peak, step = liveness_peak(buffers)
    op = f"#{step - 1} {graph.ops[step - 1].type}" if step else "graph inputs"
    return {"bytes": peak, "step": step, "op": op}


def _weights(graph: ModelGraph) -> tuple[int, int]:
    weights = [t for t in graph.tensors if t.weight]
    return sum(t.elements for t in weights), sum(t.nbytes or 0 for t in weights)


def _op_table(graph: ModelGraph) -> list[dict]:
    rows: dict[str, dict] = {}
    for op in graph.ops:
        row = rows.setdefault(op.type, {"op": op.type, "count": 0, "macs": 0})
        row["count"] += 1
        row["macs"] += op.macs
    return sorted(rows.values(), key=lambda r: (-r["count"], r["op"]))


def _tflm_section(graph: ModelGraph, measure: bool) -> dict:
    problems = tflm.static_problems(graph)
    section: dict = {"supported_ops": sorted({op.type for op in graph.ops} & tflm.TFLM_BUILTIN_OPS)}
    section["unsupported_ops"] = sorted({op.type for op in graph.ops} - tflm.TFLM_BUILTIN_OPS)
    section["arena_estimate"] = tflm.arena_estimate(graph)
    section["measured"] = None
    if not measure:
        section["measured_note"] = "not measured (--no-measure)"
    elif not tflm_measure.available():
        section["measured_note"] = "tflite-micro is not installed (pip install tflite-micro)"
    elif problems:
        section["measured_note"] = "not measured: static problems"
    else:
        estimate = section["arena_estimate"]["estimate"]
        try:
            measured = tflm_measure.measure_arena(graph.path, len(graph.inputs), expected=estimate)
        except RuntimeError as error:
            problems.append(f"tflite-micro cannot load it: {error}")
            section["measured_note"] = "does not load in tflite-micro"
        else:
            if not measured["invoked"]:
                problems.append(f"tflite-micro loads it but cannot invoke it: {measured['error']}")
            measured["relative_error"] = round((estimate - measured["arena_bytes"]) / measured["arena_bytes"], 4)
            section["measured"] = measured
    section["problems"] = problems
    section["readiness"] = "ready" if not problems else "not ready"
    return section


def _manifest_section(path: Path) -> dict | None:
    if not manifest_path(path).is_file():
        return None
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        return {"error": str(error)}
    return {key: manifest.get(key) for key in ("task", "labels", "metrics", "precision")}


def inspect_model(path: str | Path, measure: bool = True) -> dict:
    """Everything `edgekd inspect` shows, as a JSON-ready dict. ModelFileError for a missing, unknown or
    corrupt file. With `measure` and tflite-micro installed, a `.tflite` is also loaded and run in it."""
    graph = read_graph(path)
    params, weight_bytes = _weights(graph)
    report = {
        "file": str(graph.path),
        "format": graph.format,
        "precision": graph.precision,
        "size_bytes": graph.path.stat().st_size,
        "op_count": len(graph.ops),
        "ops": _op_table(graph),
        "tensors": len(graph.tensors),
        "params": params,
        "weight_bytes": weight_bytes,
        "macs": sum(op.macs for op in graph.ops),
        "peak_activations": peak_activations(graph),
        "notes": list(graph.notes),
    }
    unknown = sum(1 for t in graph.activations if graph.tensors[t].nbytes is None)
    if unknown:
        report["notes"].append(f"{unknown} activation(s) without a known shape count 0 bytes")
    if graph.format == "tflite":
        report["tflm"] = _tflm_section(graph, measure)
    else:
        report["tflm"] = {"readiness": "n/a", "problems": tflm.static_problems(graph)}
        if graph.precision == "int8":
            report["notes"].append("QDQ graph: activations are counted as written, float between Q/DQ pairs")
    report["manifest"] = _manifest_section(graph.path)
    return report
