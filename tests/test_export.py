"""`edgekd export`: every format written, run in its own runtime, compared with torch, described by a manifest;
failures are loud and leave no manifest."""

import json

import numpy as np
import pytest

from edgekd.cli import main
from edgekd.export.verify import check, compare
from edgekd.runtime.backends import ModelFileError, TFLiteBackend, dequantize, open_backend, quantize
from edgekd.runtime.manifest import ManifestError, manifest_path, read_manifest, validate_manifest

FILES = {
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "tflite": "model.tflite",
    "tflite-int8": "model.int8.tflite",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch classifier (digits) and detector (faces, n scale) trained by the CLI."""
    root = tmp_path_factory.mktemp("models")
    assert (
        main(["train", "--data", "digits", "--model", "thesis", "--epochs", "1", "--out", str(root / "cls"), "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "train",
                "--task",
                "detect",
                "--data",
                "faces",
                "--model",
                "n",
                "--epochs",
                "1",
                "--out",
                str(root / "det"),
                "--quiet",
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = {}
    for name in ("cls", "det"):
        folder = tmp_path_factory.mktemp(f"export-{name}")
        assert main(["export", str(trained / name / "model.pt"), "--out", str(folder)]) == 0
        out[name] = folder
    return out


@pytest.mark.parametrize("name", ["cls", "det"])
def test_every_format_is_verified_and_described(exported, name):
    folder = exported[name]
    summary = json.loads((folder / "export.json").read_text())
    for fmt, file in FILES.items():
        result = summary["formats"][fmt]
        assert "error" not in result, result
        manifest = read_manifest(folder / file)  # validates the schema and the sha256
        assert manifest["precision"] == ("int8" if "int8" in fmt else "fp32")
        assert manifest["task"] == ("detect" if name == "det" else "classify")
        assert manifest["metrics"]["reference"] == summary["reference"]
        if manifest["precision"] == "fp32":
            assert result["comparison"]["relative_error"] < 1e-3
        else:
            assert result["comparison"]["min_cosine"] > 0.9
    tflite_int8 = read_manifest(folder / "model.int8.tflite")
    assert tflite_int8["input"]["dtype"] == "int8" and tflite_int8["input"]["layout"] == "NHWC"
    assert tflite_int8["input"]["quantization"]["scale"] > 0
    assert all(o["dtype"] == "int8" for o in tflite_int8["outputs"])
    # int8 files are smaller than their fp32 originals
    assert (folder / "model.int8.tflite").stat().st_size < (folder / "model.tflite").stat().st_size / 1.5
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size


def test_detector_int8_input_holds_the_whole_pixel_range(exported):
    summary = json.loads((exported["det"] / "export.json").read_text())
    low, high = summary["formats"]["tflite-int8"]["input_range"]["representable"]
    assert low <= 0.0 + 1e-6 and high >= 1.0 - 1 / 255
    assert summary["formats"]["tflite-int8"]["input_range"]["clipped_fraction"] == 0


def test_detector_manifest_carries_decoding(exported, trained):
    manifest = read_manifest(exported["det"] / "model.int8.tflite")
    assert manifest["decoding"]["kind"] == "centernet" and manifest["decoding"]["stride"] == 8
    assert manifest["labels"] == ["face"]
    assert manifest["input"]["preprocessing"]["resize"] == "letterbox"
    assert manifest["provenance"]["source_model"].endswith("model.pt")


def test_backends_agree_with_each_other(exported):
    x = np.random.default_rng(0).random((2, 1, 96, 96), dtype=np.float32)
    onnx_out = open_backend(exported["det"] / "model.onnx").run(x)[0]
    tflite_out = open_backend(exported["det"] / "model.tflite").run(x)[0]
    assert onnx_out.shape == tflite_out.shape == (2, 5, 12, 12)
    np.testing.assert_allclose(onnx_out, tflite_out, atol=1e-4)


def test_int8_file_shares_its_zero_point_vectors_and_computes_the_same(exported, tmp_path):
    """The compact writer stores each distinct zero-point vector once; a plain rewrite of the same model (every
    vector written out) is larger and gives bit-identical outputs."""
    from ai_edge_litert.tools import flatbuffer_utils

    compact = exported["det"] / "model.int8.tflite"
    plain = tmp_path / "plain.tflite"
    flatbuffer_utils.write_model(flatbuffer_utils.read_model(str(compact)), str(plain))
    assert compact.stat().st_size < plain.stat().st_size * 0.95
    x = np.random.default_rng(1).random((1, 1, 96, 96), dtype=np.float32)
    for a, b in zip(open_backend(compact).run(x), open_backend(plain).run(x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_int8_quantization_round_trips():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    q = quantize(x, 1 / 127, 0, np.int8)
    assert q.dtype == np.int8 and q.min() == -127 and q.max() == 127
    np.testing.assert_allclose(dequantize(q, 1 / 127, 0), x, atol=0.5 / 127 + 1e-7)
    assert quantize(np.float32([5.0]), 1 / 127, 0, np.int8)[0] == 127  # saturates, never wraps


def test_wrong_input_shape_is_a_clear_error(exported):
    backend = TFLiteBackend(exported["det"] / "model.tflite")
    with pytest.raises(ModelFileError, match="input of shape"):
        backend.run(np.zeros((1, 1, 64, 64), np.float32))


@pytest.mark.parametrize("content,suffix", [(b"not a model", ".onnx"), (b"\x00" * 64, ".tflite")])
def test_corrupt_model_files_are_refused(tmp_path, content, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="broken"):
        open_backend(path)
    with pytest.raises(ModelFileError, match="unknown model format"):
        open_backend(tmp_path / "model.pt")


def test_manifest_rejects_a_changed_file_and_names_bad_fields(exported, tmp_path):
    source = exported["cls"] / "model.int8.tflite"
    copy = tmp_path / "model.int8.tflite"
    copy.write_bytes(source.read_bytes() + b"\x00")
    manifest_path(copy).write_text(manifest_path(source).read_text())
    with pytest.raises(ManifestError, match="sha256 differs"):
        read_manifest(copy)
    manifest = json.loads(manifest_path(source).read_text())
    manifest["input"]["dtype"] = "float64"
    with pytest.raises(ManifestError, match=r"input\.dtype"):
        validate_manifest(manifest)


def test_divergent_outputs_fail_the_check():
    reference = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    assert check(compare(reference, reference + 1e-6), "fp32") is None
    assert "differs from torch" in check(compare(reference, reference + 0.5), "fp32")
    assert "cosine" in check(compare(reference, -reference), "int8")
    assert "shape" in check(compare(reference, reference[:, :5]), "fp32")


def test_failed_verification_exits_non_zero_and_writes_no_manifest(trained, tmp_path, capsys):
    # An impossible tolerance: int8 may not lose anything, it must gain 100 points.
    code = main(
        [
            "export",
            str(trained / "cls" / "model.pt"),
            "--out",
            str(tmp_path),
            "--formats",
            "onnx,tflite-int8",
            "--max-drop",
            "-100",
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "model.int8.tflite" in error and "max-drop" in error
    assert manifest_path(tmp_path / "model.onnx").is_file()
    assert not manifest_path(tmp_path / "model.int8.tflite").exists()


def test_unknown_format_is_refused(trained, tmp_path, capsys):
    assert main(["export", str(trained / "cls" / "model.pt"), "--out", str(tmp_path), "--formats", "coreml"]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_quantization_aware_fallback_runs_and_is_recorded(trained, tmp_path):
    # Impossible tolerance again: post-training int8 fails, QAT is tried, is recorded, and still fails loudly.
    code = main(
        [
            "export",
            str(trained / "cls" / "model.pt"),
            "--out",
            str(tmp_path),
            "--formats",
            "onnx-int8",
            "--max-drop",
            "-100",
            "--qat-epochs",
            "1",
        ]
    )
    assert code == 2
    result = json.loads((tmp_path / "export.json").read_text())["formats"]["onnx-int8"]
    assert result["qat"]["epochs"] == 1 and len(result["qat"]["history"]) == 1
    assert "drop_points_before" in result["qat"]


def test_quantization_aware_retry_quantizes_the_fine_tuned_graph(trained, tmp_path, monkeypatch):
    """With fp32 ONNX exported in the same run, the QAT retry must still quantize the fine-tuned model's graph, not
    the original model's file again (which repeated the original drop exactly)."""
    import edgekd.workflows.export as export_workflow
    from edgekd.runtime.manifest import sha256_file

    quantized_sources = []
    real = export_workflow.quantize_onnx_fastest

    def recording(source, target, calibration):
        quantized_sources.append(sha256_file(source))
        return real(source, target, calibration)

    monkeypatch.setattr(export_workflow, "quantize_onnx_fastest", recording)
    args = ["--formats", "onnx,onnx-int8", "--max-drop", "-100", "--qat-epochs", "1"]
    assert main(["export", str(trained / "cls" / "model.pt"), "--out", str(tmp_path), *args]) == 2
    assert len(quantized_sources) == 2 and quantized_sources[0] != quantized_sources[1]
    assert quantized_sources[0] == sha256_file(tmp_path / "model.onnx")  # the first try used the fp32 file


def test_mcu_target_checks_tflite_micro(trained, tmp_path):
    assert main(["export", str(trained / "det" / "model.pt"), "--out", str(tmp_path), "--target", "mcu"]) == 0
    summary = json.loads((tmp_path / "export.json").read_text())
    assert list(summary["formats"]) == ["tflite-int8"]
    assert summary["formats"]["tflite-int8"]["tflm_problems"] == []


def test_mcu_target_refuses_formats_without_int8_tflite(trained, tmp_path, capsys):
    code = main(
        ["export", str(trained / "det" / "model.pt"), "--out", str(tmp_path), "--target", "mcu", "--formats", "onnx"]
    )
    assert code == 2
    assert "tflite-int8" in capsys.readouterr().err
