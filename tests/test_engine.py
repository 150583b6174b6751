"""The torch-free engine: manifest-driven pre/post-processing gives what training-side evaluation gives; models
from other tools (YOLOv5/v8 layouts) decode; bad files and inputs are clear errors."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from edgekd.cli import main
from edgekd.data.detection.builtin import face_composite
from edgekd.models.checkpoint import load_model
from edgekd.runtime.backends import ModelFileError, open_backend, quantize
from edgekd.runtime.engine import Classification, Detections, Engine
from edgekd.runtime.manifest import ManifestError
from edgekd.train.detection_eval import detect


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    args = ["train", "--task", "detect", "--data", "faces", "--model", "n", "--epochs", "2", "--out", str(root / "m")]
    assert main([*args, "--quiet"]) == 0
    formats = "onnx,onnx-int8,tflite,tflite-int8"
    assert main(["export", str(root / "m" / "model.pt"), "--out", str(root / "x"), "--formats", formats]) == 0
    return root


@pytest.mark.parametrize("file", ["model.onnx", "model.tflite"])
def test_engine_detections_equal_training_side_evaluation(detector, file):
    model, meta = load_model(detector / "m" / "model.pt")
    engine = Engine(detector / "x" / file)
    images = face_composite("test", 96, 1, 12).images
    compared = 0
    for image in images:
        found = engine.predict(image)
        boxes, scores, _ = detect(model, [image], meta["score_threshold"])[0][0]
        assert isinstance(found, Detections) and len(found) == len(boxes)
        np.testing.assert_allclose(found.boxes, boxes, atol=1e-3)
        np.testing.assert_allclose(found.scores, scores, atol=1e-4)
        assert all(label == "face" for label in found.labels)
        compared += len(boxes)
    assert compared > 0  # some faces were found, so boxes were really compared


def test_engine_infer_is_the_raw_runtime(detector):
    engine = Engine(detector / "x" / "model.onnx")
    x, _ = engine.preprocess(face_composite("test", 96, 1, 1).images[0])
    raw = open_backend(detector / "x" / "model.onnx").run(x)
    np.testing.assert_array_equal(engine.infer(x)[0], raw[0])


def _table_lookup_matches_float_path(engine: Engine, images: list[np.ndarray]) -> None:
    """predict() feeds the runtime its input through one table lookup per frame: the same tensor as the float
    pre-processing (then, for TFLite, the input quantization), and the same predictions."""
    assert engine.table_input
    backend = engine.backend
    for image in images:
        fitted, geometry = engine.fit(image)
        via_table = cv2.LUT(fitted, engine._table).reshape(1, engine.height, engine.width, engine.channels)
        x, _ = engine.preprocess(image)
        if backend.format == "onnx":  # float NCHW
            np.testing.assert_array_equal(via_table.transpose(0, 3, 1, 2), x)
        else:
            quantization = backend.input_quantization
            stored = quantize(x.transpose(0, 2, 3, 1), *quantization, backend.input["dtype"]) if quantization else x
            assert via_table.dtype == backend.input["dtype"]
            np.testing.assert_array_equal(via_table, stored.reshape(via_table.shape))
        found, expected = engine.predict(image), engine.predict_via_float(image)
        if isinstance(found, Detections):
            np.testing.assert_array_equal(found.boxes, expected.boxes)
            np.testing.assert_array_equal(found.scores, expected.scores)
        else:
            np.testing.assert_array_equal(found.probabilities, expected.probabilities)


@pytest.mark.parametrize("file", ["model.onnx", "model.int8.onnx", "model.tflite", "model.int8.tflite"])
def test_input_by_table_lookup_is_bit_identical_gray(detector, file):
    images = list(face_composite("test", 96, 1, 3).images)
    images.append(np.random.default_rng(1).integers(0, 256, (70, 130, 1), dtype=np.uint8))  # letterboxed
    _table_lookup_matches_float_path(Engine(detector / "x" / file), images)


def test_input_by_table_lookup_is_bit_identical_rgb(tmp_path):
    """Three channels with different normalisations: a table per channel, in the right order."""
    from tests.mcu_helpers import kernel_zoo

    engine = Engine(kernel_zoo(tmp_path, 2, 8, (16, 16)), task="classify", labels=list("abcde"))
    engine._mean = np.float32([0.1, 0.5, 0.9]).reshape(1, -1, 1, 1)
    engine._std = np.float32([0.2, 0.3, 0.25]).reshape(1, -1, 1, 1)
    engine._table = engine._native_table()
    assert len({engine._table[:, 0, c].tobytes() for c in range(3)}) == 3
    rng = np.random.default_rng(2)
    _table_lookup_matches_float_path(engine, [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(3)])


def test_engine_refuses_a_file_without_manifest_and_a_wrong_input(detector, tmp_path):
    copy = tmp_path / "model.onnx"
    copy.write_bytes((detector / "x" / "model.onnx").read_bytes())
    with pytest.raises(ManifestError, match="no manifest"):
        Engine(copy)
    engine = Engine(detector / "x" / "model.onnx")
    with pytest.raises(ModelFileError, match="input of shape"):
        engine.infer(np.zeros((1, 3, 96, 96), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        engine.predict(np.zeros((96, 96), np.float32))


class _FixedYolo(torch.nn.Module):
    """Ignores its input and outputs fixed YOLO rows: one confident box of class 1."""

    def __init__(self, rows: torch.Tensor):
        super().__init__()
        self.register_buffer("rows", rows)

    def forward(self, x):
        return self.rows + 0 * x.mean()


def _yolo_onnx(path, rows):
    torch.onnx.export(_FixedYolo(rows), (torch.zeros(1, 3, 64, 64),), str(path), opset_version=17, dynamo=False)
    return path


@pytest.mark.parametrize("layout", ["yolov5", "yolov8"])
def test_third_party_yolo_is_decoded_and_mapped_back(tmp_path, layout):
    # A box centred at (32, 16), 20 x 10 input pixels, class 1 with score 0.9; 20 empty rows.
    if layout == "yolov5":
        rows = torch.zeros(1, 21, 5 + 2)
        rows[0, 0] = torch.tensor([32, 16, 20, 10, 1.0, 0.05, 0.9])
    else:
        rows = torch.zeros(1, 4 + 2, 21)
        rows[0, :, 0] = torch.tensor([32, 16, 20, 10, 0.05, 0.9])
    engine = Engine(_yolo_onnx(tmp_path / "yolo.onnx", rows), task="detect", labels=["cat", "dog"])
    assert engine.manifest["decoding"]["kind"] == layout
    image = np.zeros((128, 256, 3), np.uint8)  # letterboxed to 64 x 64: scale 0.25, 16 px of padding on top
    found = engine.predict(image)
    assert len(found) == 1 and found.labels == ["dog"]
    assert found.scores[0] == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose(
        found.boxes[0], [88, 0, 168, 20], atol=1e-3
    )  # ((32 +- 10) / 0.25, (16 +- 5 - 16) / 0.25)


def test_third_party_classifier_gets_labels(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([0.0, 2.0, 0.0]))
    path = tmp_path / "cls.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(path), opset_version=17, dynamo=False)
    result = Engine(path, task="classify", labels=["a", "b", "c"]).predict(np.zeros((20, 30, 3), np.uint8))
    assert isinstance(result, Classification) and result.label == "b"
    assert result.probabilities.sum() == pytest.approx(1.0)


def test_runtime_and_bench_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import edgekd.runtime.engine, edgekd.runtime.backends, edgekd.runtime.manifest, edgekd.bench.latency\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
