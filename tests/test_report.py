"""The benchmark report schema: a built report validates and survives JSON; a bad one is rejected naming the field."""

import copy
import json
import subprocess
import sys

import pytest

from edgekd.bench.report import REPORT_VERSION, ReportError, failed_report, new_report, validate_report

LATENCY = {
    "runs": 3,
    "warmup": 1,
    "min_ms": 1.0,
    "mean_ms": 2.0,
    "p50_ms": 2.0,
    "p95_ms": 2.9,
    "p99_ms": 2.98,
    "std_ms": 0.8,
    "fps": 500.0,
}
MODEL = {
    "file": "model.int8.tflite",
    "sha256": "a" * 64,
    "format": "tflite",
    "precision": "int8",
    "task": "detect",
    "size_bytes": 25_080,
    "verified": True,
}


def good_report() -> dict:
    return new_report(
        model=dict(MODEL),
        runtime="ai-edge-litert 2.3.0",
        threads=1,
        started_at="2026-11-28T07:41:36.557+00:00",
        finished_at="2026-11-28T07:41:37.001Z",
        init_ms=3.2,
        first_inference_ms=1.5,
        latency=dict(LATENCY),
        end_to_end=dict(LATENCY),
        memory={"peak_rss_bytes": 80_000_000, "load_delta_bytes": 163_840, "runs_delta_bytes": -4096},
        accuracy={
            "dataset": "faces",
            "split": "test",
            "images": 200,
            "metrics": {"precision": 0.9, "recall": 0.8, "map50": 0.85, "map": 0.5},
            "primary": "map50",
        },
        device_id="pi-kitchen",
        device_kind="rpi",
    )


def test_new_report_validates_and_round_trips_through_json():
    report = good_report()
    assert report["schema"] == REPORT_VERSION and report["status"] == "ok"
    assert report["runtime"] == {"name": "ai-edge-litert", "version": "2.3.0"}
    assert report["device"] == {"id": "pi-kitchen", "kind": "rpi"}
    assert {"python", "os", "machine", "cpu"} <= set(report["environment"])
    assert validate_report(json.loads(json.dumps(report))) == report


def test_report_ids_are_unique():
    assert good_report()["report_id"] != good_report()["report_id"]


def test_failed_report_needs_only_the_file_and_the_error():
    report = failed_report(
        model={"file": "missing.onnx"},
        error="missing.onnx: no such model file",
        started_at="2026-11-28T07:41:36Z",
        finished_at="2026-11-28T07:41:36Z",
    )
    assert report["status"] == "error" and report["device"]["kind"] in ("host", "rpi", "jetson")
    del report["error"]
    with pytest.raises(ReportError, match="field error:"):
        validate_report(report)


def _broken(change) -> dict:
    report = copy.deepcopy(good_report())
    change(report)
    return report


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r["latency"].pop("p50_ms"), "latency.p50_ms"),
        (lambda r: r["latency"].update(p50_ms=-1.0), "latency.p50_ms"),
        (lambda r: r["latency"].update(p50_ms="fast"), "latency.p50_ms"),
        (lambda r: r["latency"].update(p95_ms=1.5), "latency.p95_ms"),  # below p50
        (lambda r: r["end_to_end"].update(runs=0), "end_to_end.runs"),
        (lambda r: r.update(schema="edgekd-report/0"), "schema"),
        (lambda r: r.update(report_id="42"), "report_id"),
        (lambda r: r["model"].update(sha256="xyz"), "model.sha256"),
        (lambda r: r["model"].pop("sha256"), "model.sha256"),
        (lambda r: r["model"].update(format="pt"), "model.format"),
        (lambda r: r["device"].update(kind="toaster"), "device.kind"),
        (lambda r: r.update(started_at="2026-11-28 07:41"), "started_at"),
        (lambda r: r.update(finished_at="2026-11-28T08:41:36+01:00"), "finished_at"),  # not UTC
        (lambda r: r.update(finished_at="2026-11-28T07:00:00Z"), "finished_at"),  # before started_at
        (lambda r: r.pop("latency"), "latency"),
        (lambda r: r["memory"].update(peak_rss_bytes=0), "memory.peak_rss_bytes"),
        (lambda r: r["accuracy"]["metrics"].update(map50=85.0), "accuracy.metrics.map50"),
        (lambda r: r["accuracy"].pop("dataset"), "accuracy.dataset"),
        (lambda r: r["environment"].pop("cpu"), "environment.cpu"),
        (lambda r: r.update(threads=0), "threads"),
    ],
)
def test_bad_report_is_rejected_naming_the_field(change, field):
    with pytest.raises(ReportError, match=rf"field {field}:"):
        validate_report(_broken(change))


def test_report_module_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import edgekd.bench.report, edgekd.bench.bench, edgekd.bench.accuracy, edgekd.bench.detection_metrics\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
