"""Detector family: shapes, MCU budgets, training signal, numpy decoding/NMS, COCO metrics and ONNX export."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.models.detection_loss import build_targets, detection_loss
from edgekd.models.detectors import (
    PRESETS,
    STRIDE,
    Add,
    ConvBNAct,
    activation_peak_bytes,
    build_detector,
    build_preset,
)
from edgekd.models.profile import model_profile
from edgekd.runtime.postprocess import batched_nms, box_iou, decode_centernet, nms, scale_boxes
from edgekd.train.detection_metrics import coco_map

torch.set_num_threads(1)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_with_expected_output(name):
    model = build_preset(name).eval()
    channels, height, width = model.input_shape
    with torch.no_grad():
        out, feats = model.forward_features(torch.zeros(1, channels, height, width))
    assert out.shape == (1, PRESETS[name]["num_classes"] + 4, height // STRIDE, width // STRIDE)
    assert list(feats) == model.feature_names == ["stem", "stage1", "stage2", "stage3", "stage4", "neck"]
    assert all(feats[k].shape[1] == c for k, c in model.feature_channels.items())
    profile = model_profile(model, model.input_shape)
    assert profile["params"] > 0 and profile["macs"] > 0
    spec = dict(model.spec)
    assert spec.pop("arch") == "detector"
    rebuilt = build_detector(**spec)
    rebuilt.load_state_dict(model.state_dict())  # same architecture


def test_mcu_face_fits_the_microcontroller_budget():
    model = build_preset("mcu-face")
    assert model.input_shape == (1, 96, 96)
    assert model_profile(model, model.input_shape)["params"] <= 100_000  # <= 100 KB of int8 weights
    assert activation_peak_bytes(model, model.input_shape) <= 64 * 1024


def test_activation_peak_counts_held_skip_tensors():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = ConvBNAct(1, 4), ConvBNAct(4, 8), ConvBNAct(8, 4)
            self.add = Add()

        def forward(self, x):
            a = self.c1(x)
            return self.add(a, self.c3(self.c2(a)))

    # 8x8 maps: while c3 runs, c1's 256-byte output is held beside c3's 512 in and 256 out.
    assert activation_peak_bytes(Skip(), (1, 8, 8)) == 256 + 512 + 256


def test_bad_configuration_is_a_config_error():
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_detector("n", 1, 1, 100)
    with pytest.raises(ConfigError, match="scale"):
        build_detector("xl", 1, 1, 96)
    with pytest.raises(ConfigError, match="preset"):
        build_preset("esp32")


def test_targets_peak_at_the_centre_cell():
    targets = build_targets([np.array([[8.0, 16.0, 40.0, 48.0]])], [np.array([1])], 2, (8, 8), STRIDE)
    heatmap = targets["heatmap"][0]
    # Centre (24, 32) px = (3, 4) strides -> cell column 3, row 4.
    assert heatmap[1, 4, 3] == 1.0 and heatmap[1].max() == 1.0 and heatmap[0].max() == 0.0
    assert targets["box"][0, :, 4, 3].tolist() == [1.0, 2.0, 5.0, 6.0]
    assert targets["box_weight"][0, 4, 3] == 1.0


def test_loss_decreases_when_overfitting_two_images():
    torch.manual_seed(0)
    images = torch.zeros(2, 1, 64, 64)
    images[0, :, 8:40, 16:48] = 1.0
    images[1, :, 24:56, 4:28] = 1.0
    boxes = [np.array([[16.0, 8.0, 48.0, 40.0]]), np.array([[4.0, 24.0, 28.0, 56.0]])]
    classes = [np.array([0]), np.array([0])]
    model = build_detector("n", num_classes=1, in_channels=1, input_size=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = detection_loss(model(images), boxes, classes, STRIDE)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_decode_hand_made_output():
    logits = np.full((2, 6, 6), -10.0, np.float32)
    logits[1, 2, 3] = 2.0  # the peak, score sigmoid(2) = 0.881
    logits[1, 2, 4] = 1.0  # its neighbour: not a 3x3 maximum
    logits[0, 5, 0] = -2.0  # a separate peak below the threshold
    ltrb = np.zeros((4, 6, 6), np.float32)
    ltrb[:, 2, 3] = [1.0, 0.5, 2.0, 1.5]
    output = np.concatenate([logits, ltrb])[None]
    boxes, scores, class_ids = decode_centernet(output, stride=8, score_threshold=0.3)
    # Cell (row 2, col 3) centre = (28, 20) px; sides at 8 * (1, 0.5, 2, 1.5) px from it.
    np.testing.assert_allclose(boxes, [[20.0, 16.0, 44.0, 32.0]])
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))], rtol=1e-6)
    assert class_ids.tolist() == [1]
    clipped, _, _ = decode_centernet(output[0], stride=8, score_threshold=0.3, input_size=(48, 40))
    np.testing.assert_allclose(clipped, [[20.0, 16.0, 40.0, 32.0]])
    assert len(decode_centernet(output, 8, score_threshold=0.1)[0]) == 2
    assert len(decode_centernet(output, 8, score_threshold=0.1, max_detections=1)[0]) == 1
    with pytest.raises(ValueError):
        decode_centernet(np.zeros((3, 6, 6)), 8)


def test_nms_and_iou_on_hand_made_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # IoU(0, 1) = 81 / 119 = 0.68
    assert nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    np.testing.assert_allclose(box_iou(boxes[:1], np.array([[5, 0, 15, 10]])), [[50 / 150]])


def test_scale_boxes_undoes_the_letterbox():
    # A 200x100 (w x h) image letterboxed into 320x320: scale 1.6, 80 px bars at the top and bottom.
    boxes = scale_boxes(np.array([[16.0, 96.0, 160.0, 176.0]]), 1.6, (0, 80))
    np.testing.assert_allclose(boxes, [[10.0, 10.0, 100.0, 60.0]], rtol=1e-6)
    clipped = scale_boxes(np.array([[-16.0, 0.0, 400.0, 176.0]]), 1.6, (0, 80), image_size=(100, 200))
    np.testing.assert_allclose(clipped, [[0.0, 0.0, 200.0, 60.0]])


def _coco(annotations_per_image, categories=({"id": 1, "name": "face"}, {"id": 7, "name": "cat"})):
    images = [{"id": i + 10, "width": 100, "height": 100} for i in range(len(annotations_per_image))]
    annotations = [
        {"image_id": i + 10, "category_id": cat, "bbox": list(xywh)}
        for i, anns in enumerate(annotations_per_image)
        for cat, xywh in anns
    ]
    return {"images": images, "annotations": annotations, "categories": list(categories)}


def test_map_of_perfect_detections_is_one():
    gt = _coco([[(1, (10, 10, 20, 30)), (7, (50, 50, 30, 20))], [(7, (5, 5, 40, 40))]])
    detections = [
        (np.array([[10, 10, 30, 40], [50, 50, 80, 70]]), np.array([0.9, 0.8]), np.array([0, 1])),
        (np.array([[5, 5, 45, 45]]), np.array([0.7]), np.array([1])),
    ]
    result = coco_map(gt, detections)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert result["precision"] == 1.0 and result["recall"] == 1.0 and result["num_gt"] == 3
    cat = result["per_class"]["cat"]
    assert cat["num_gt"] == 2 and cat["map"] == pytest.approx(1.0)


def test_map_when_one_of_two_objects_is_found():
    gt = _coco([[(1, (10, 10, 20, 20)), (1, (60, 60, 20, 20))]], categories=[{"id": 1, "name": "face"}])
    # One exact hit at 0.9 and one miss at 0.1, below the 0.3 operating threshold.
    detections = [(np.array([[10, 10, 30, 30], [30, 60, 50, 80]]), np.array([0.9, 0.1]), np.array([0, 0]))]
    result = coco_map(gt, detections, score_threshold=0.3)
    # Precision is 1 up to recall 0.5 and 0 beyond: 51 of COCO's 101 recall points (0, 0.01, ..., 0.5).
    assert result["map50"] == pytest.approx(51 / 101) and result["map"] == pytest.approx(51 / 101)
    assert result["precision"] == 1.0 and result["recall"] == 0.5
    low = coco_map(gt, detections, score_threshold=0.05)
    assert low["precision"] == 0.5 and low["recall"] == 0.5


def test_map_without_detections_is_zero():
    gt = _coco([[(1, (10, 10, 20, 20))]])
    result = coco_map(gt, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))])
    assert result["map"] == 0.0 and result["recall"] == 0.0 and result["num_gt"] == 1
    assert result["per_class"]["cat"]["map"] is None  # no ground truth for that class


ALLOWED_ONNX_OPS = {"Conv", "Relu", "Clip", "Add", "Resize", "Concat", "Reshape"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter is asked for on purpose
def test_mcu_face_exports_to_onnx_with_microcontroller_ops(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_preset("mcu-face")
    with torch.no_grad():  # give BatchNorm non-trivial statistics to fold
        model.train()(torch.randn(4, *model.input_shape))
    model.eval()
    x = torch.randn(1, *model.input_shape)
    path = tmp_path / "mcu_face.onnx"
    torch.onnx.export(
        model, (x,), str(path), opset_version=17, dynamo=False, input_names=["image"], output_names=["output"]
    )
    graph = onnx.load(str(path)).graph
    # Constant nodes are operands, not kernels: the Clip bounds of ReLU6 and the Resize scales.
    assert {node.op_type for node in graph.node} - {"Constant"} <= ALLOWED_ONNX_OPS
    resize_modes = {a.s for n in graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"}
    assert resize_modes == {b"nearest"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, model(x).numpy(), atol=1e-4)


def test_postprocess_does_not_import_torch():
    code = (
        "import sys; sys.modules['torch'] = None; "
        "import edgekd.runtime.postprocess; "
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
