"""`edgekd bench`: measure model files the way users compare tools (TFLite's benchmark_model, `yolo benchmark`) and
describe each in a report (`edgekd.bench.report`). Torch-free: it runs on every device.

Per model: init time (engine construction: manifest check, runtime load), the first inference, warm-up, then N
timed runs (or a time budget) of the model call on a prepared input; pre-processing + model + post-processing of
one image separately; resident memory; accuracy on a dataset's test split when one is named. A model that cannot
be measured gets an error report and the others are still measured.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.bench.latency import latency_stats, time_for, time_runs
from edgekd.bench.memory import current_rss_bytes, peak_rss_bytes, rss_delta
from edgekd.bench.report import failed_report, new_report, report_file_name, utc_now
from edgekd.errors import ConfigError, EdgeKDError
from edgekd.runtime.backends import ModelFileError
from edgekd.runtime.engine import Engine
from edgekd.runtime.manifest import ManifestError, sha256_file

END_TO_END_RUNS = 20  # pre-processing and decoding cost far less than the model: a few runs give a stable median


@dataclass
class BenchOptions:
    runs: int = 100
    seconds: float | None = None  # a time budget instead of a run count
    warmup: int = 10
    threads: int = 1
    task: str | None = None  # for files edgekd did not export (no manifest)
    labels: list[str] | None = None
    data: str | None = None  # dataset whose test split gives the accuracy
    max_images: int | None = None
    device_id: str | None = None
    device_kind: str | None = None

    def check(self) -> BenchOptions:
        if self.seconds is None and self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError(f"--seconds must be positive, got {self.seconds}")
        if self.warmup < 0 or self.threads < 1:
            raise ConfigError("--warmup must be >= 0 and --threads >= 1")
        if self.labels and not self.task:
            raise ConfigError("--labels is for models edgekd did not export: give --task classify|detect too")
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(f"--max-images must be at least 1, got {self.max_images}")
        return self


def model_description(path: Path, engine: Engine | None = None) -> dict:
    """The report's `model` section: from the manifest (verified by export) or from the file itself."""
    described = {"file": path.name}
    if not path.is_file() or path.stat().st_size == 0:
        return described
    manifest = engine.manifest if engine else {}
    verified = engine is not None and "sha256" in manifest  # third-party manifests are built, not read
    described.update(sha256=manifest["sha256"] if verified else sha256_file(path), size_bytes=path.stat().st_size)
    if engine is not None:
        input_dtype = manifest["input"].get("dtype", "float32")
        guessed = "int8" if input_dtype in ("int8", "uint8") else "unknown"
        described.update(
            format=manifest["format"],
            precision=manifest.get("precision", guessed),
            task=manifest["task"],
            verified=verified,
        )
    return described


def _import_runtime(path: Path) -> None:
    """Import the runtime library up front: init time and memory are then this model's load, not a one-off import."""
    names = {".onnx": ["onnxruntime"], ".tflite": ["ai_edge_litert.interpreter", "tflite_runtime.interpreter"]}
    for name in names.get(path.suffix, []):
        try:
            importlib.import_module(name)
            return
        except ImportError:
            continue


def _open(path: Path, options: BenchOptions) -> Engine:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return Engine(path, options.threads, options.task, options.labels)
    except ManifestError as error:
        if options.task is None and "no manifest" in str(error):
            raise ManifestError(
                f"{error}; to run a model edgekd did not export give --task classify|detect (and --labels a,b,...)"
            ) from error
        raise


def _sample_image(engine: Engine, options: BenchOptions) -> np.ndarray:
    """A real test image when a dataset is named, else fixed noise of the model's input size (latency of these
    models does not depend on the pixels)."""
    if options.data:
        from edgekd.bench.accuracy import load_test_split

        return load_test_split(options.data, engine.task)[1].images[0]
    shape = (engine.height, engine.width, engine.channels)
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def _measure(path: Path, options: BenchOptions, started_at: str) -> dict:
    _import_runtime(path)
    rss_before = current_rss_bytes()
    started = time.perf_counter()
    engine = _open(path, options)
    init_ms = (time.perf_counter() - started) * 1000
    rss_loaded = current_rss_bytes()

    image = _sample_image(engine, options)
    x, _ = engine.preprocess(image)
    started = time.perf_counter()
    engine.infer(x)
    first_ms = (time.perf_counter() - started) * 1000

    def call():
        return engine.infer(x)

    if options.seconds is not None:
        seconds = time_for(call, options.seconds, options.warmup)
    else:
        seconds = time_runs(call, options.runs, options.warmup)
    latency = {**latency_stats(seconds), "warmup": options.warmup}
    end_to_end = {**latency_stats(time_runs(lambda: engine.predict(image), END_TO_END_RUNS, 2)), "warmup": 2}
    memory = {
        "peak_rss_bytes": peak_rss_bytes(),
        "load_delta_bytes": rss_delta(rss_before, rss_loaded),
        "runs_delta_bytes": rss_delta(rss_loaded, current_rss_bytes()),
    }
    accuracy = None
    if options.data:
        from edgekd.bench.accuracy import measure_accuracy

        accuracy = measure_accuracy(engine, options.data, options.max_images)
    return new_report(
        model=model_description(path, engine),
        runtime=engine.runtime,
        threads=options.threads,
        started_at=started_at,
        finished_at=utc_now(),
        init_ms=init_ms,
        first_inference_ms=first_ms,
        latency=latency,
        end_to_end=end_to_end,
        memory=memory,
        accuracy=accuracy,
        device_id=options.device_id,
        device_kind=options.device_kind,
    )


def bench_model(path: str | Path, options: BenchOptions) -> dict:
    """A validated report for one model file; status "error" (with the message) if it could not be measured."""
    path, started_at = Path(path), utc_now()
    try:
        return _measure(path, options, started_at)
    except Exception as error:  # one broken file must not stop the others; runtimes raise their own types
        message = str(error) if isinstance(error, EdgeKDError) else f"{type(error).__name__}: {error}"
        return failed_report(
            model=model_description(path),
            error=message,
            started_at=started_at,
            finished_at=utc_now(),
            device_id=options.device_id,
            device_kind=options.device_kind,
        )


def bench_models(paths: list[str | Path], options: BenchOptions, progress=None) -> list[dict]:
    """One report per model, in order; `progress(path)` is called before each."""
    options.check()
    reports = []
    for path in paths:
        if progress:
            progress(path)
        reports.append(bench_model(path, options))
    return reports


def write_reports(reports: list[dict], folder: str | Path) -> list[Path]:
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        path = folder / report_file_name(report)
        path.write_text(json.dumps(report, indent=2))
        written.append(path)
    return written
