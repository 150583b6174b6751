"""`edgekd bench` end to end on exported tiny models: the engine gives the raw runtime's outputs, reports are written
and valid, accuracy equals what export measured, and bad files are clear errors that do not stop the others."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekd.bench.latency import latency_stats, time_for
from edgekd.bench.report import validate_report
from edgekd.cli import main
from edgekd.runtime.engine import Engine
from edgekd.runtime.manifest import read_manifest

FILES = ["model.onnx", "model.int8.onnx", "model.tflite", "model.int8.tflite"]
FAST = ["--runs", "5", "--warmup", "1"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    args = ["train", "--data", "digits", "--model", "thesis", "--epochs", "1", "--threads", "1", "--quiet"]
    assert main([*args, "--out", str(root / "m")]) == 0
    assert main(["export", str(root / "m" / "model.pt"), "--out", str(root / "x")]) == 0
    return root / "x"


def _raw_onnx(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _raw_tflite(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    sample = x.transpose(0, 2, 3, 1)  # the file is NHWC
    scale, zero_point = given["quantization"]
    if given["dtype"] != np.float32:
        sample = np.clip(np.round(sample / scale) + zero_point, -128, 127)
    interpreter.set_tensor(given["index"], sample.astype(given["dtype"]))
    interpreter.invoke()
    out = interpreter.get_tensor(taken["index"])
    scale, zero_point = taken["quantization"]
    return (out.astype(np.float32) - zero_point) * scale if taken["dtype"] != np.float32 else out


@pytest.mark.parametrize("file", FILES)
def test_engine_outputs_equal_the_raw_runtime(classifier, file):
    from edgekd.data.classification import load_dataset

    engine = Engine(classifier / file)
    raw = _raw_onnx if file.endswith(".onnx") else _raw_tflite
    for image in load_dataset("digits").test.images[:5]:
        x, _ = engine.preprocess(image)
        np.testing.assert_allclose(engine.infer(x)[0], raw(classifier / file, x), rtol=0, atol=1e-6)


def test_time_budget_against_a_fake_clock():
    now = [0.0]

    def clock():
        return now[0]

    def run():
        now[0] += 0.125  # exact in binary: the budget is met after exactly 8 runs

    seconds = time_for(run, 1.0, warmup=3, clock=clock)
    assert len(seconds) == 8 and latency_stats(seconds)["p50_ms"] == 125.0
    assert len(time_for(run, 0.0, warmup=0, clock=clock)) == 1  # always at least one run


def test_bench_cli_writes_valid_reports_and_a_table(classifier, tmp_path, capsys):
    files = [str(classifier / f) for f in FILES]
    assert main(["bench", *files, *FAST, "--data", "digits", "--json-dir", str(tmp_path), "--device-id", "t"]) == 0
    printed = capsys.readouterr().out
    for file in FILES:
        assert file in printed
    assert "top1" in printed and "p50 ms" in printed
    reports = [validate_report(json.loads(p.read_text())) for p in sorted(tmp_path.glob("*.json"))]
    assert len(reports) == 4 and all(r["status"] == "ok" and r["device"]["id"] == "t" for r in reports)
    for report in reports:
        manifest = read_manifest(classifier / report["model"]["file"])
        assert report["model"]["sha256"] == manifest["sha256"] and report["model"]["verified"]
        assert report["latency"]["runs"] == 5 and report["threads"] == 1
        # The engine's top-1 on the test split is what export measured in the same runtime.
        assert report["accuracy"]["metrics"]["top1"] == pytest.approx(manifest["metrics"]["test"]["top1"], abs=1e-9)


def test_bench_time_budget(classifier, tmp_path):
    assert main(["bench", str(classifier / "model.tflite"), "--seconds", "0.05", "--json-dir", str(tmp_path)]) == 0
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert report["latency"]["runs"] >= 1 and "accuracy" not in report


def test_a_broken_model_is_an_error_row_and_the_others_are_measured(classifier, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes((classifier / "model.tflite").read_bytes()[:500])
    (tmp_path / "corrupt.tflite.json").write_text((classifier / "model.tflite.json").read_text())
    missing = tmp_path / "missing.onnx"
    out = tmp_path / "reports"
    code = main(["bench", str(missing), str(corrupt), str(classifier / "model.onnx"), *FAST, "--json-dir", str(out)])
    assert code == 2
    captured = capsys.readouterr()
    assert "missing.onnx: no such model file" in captured.err
    assert "sha256 differs" in captured.err  # the manifest no longer describes the truncated file
    reports = {r["model"]["file"]: r for r in (validate_report(json.loads(p.read_text())) for p in out.glob("*"))}
    assert reports["missing.onnx"]["status"] == "error" and reports["corrupt.tflite"]["status"] == "error"
    assert reports["model.onnx"]["status"] == "ok"


def test_a_corrupt_file_run_as_third_party_is_a_clear_error(classifier, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 10)
    assert main(["bench", str(corrupt), "--task", "classify", *FAST]) == 2
    assert "cannot load it" in capsys.readouterr().err


def test_no_manifest_without_task_asks_for_task(classifier, tmp_path, capsys):
    copy = tmp_path / "model.onnx"
    copy.write_bytes((classifier / "model.onnx").read_bytes())
    assert main(["bench", str(copy), *FAST]) == 2
    assert "--task classify|detect" in capsys.readouterr().err
    labels = ",".join(str(i) for i in range(10))
    assert main(["bench", str(copy), "--task", "classify", "--labels", labels, *FAST]) == 0


def test_bad_options_exit_2(classifier, capsys):
    assert main(["bench", str(classifier / "model.onnx"), "--labels", "a,b"]) == 2
    assert main(["bench", str(classifier / "model.onnx"), "--runs", "0"]) == 2
    assert "--runs must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_detector_map_equals_export_and_bench_runs_without_torch(tmp_path):
    args = ["train", "--task", "detect", "--data", "faces", "--model", "n", "--epochs", "1", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert main(["export", str(tmp_path / "m" / "model.pt"), "--out", str(tmp_path / "x"), "--formats", "onnx"]) == 0
    model = tmp_path / "x" / "model.onnx"
    # `edgekd bench` in a process where torch cannot be imported (the core install is tested in a real venv too).
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgekd.cli import main\n"
        f"sys.exit(main(['bench', {str(model)!r}, '--runs', '3', '--data', 'faces', '--json-dir', {str(tmp_path)!r}]))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("model.onnx.*.json")]
    validate_report(report)
    exported = read_manifest(model)["metrics"]["test"]
    for key in ("precision", "recall", "map50", "map"):
        assert report["accuracy"]["metrics"][key] == pytest.approx(exported[key], abs=1e-6)
