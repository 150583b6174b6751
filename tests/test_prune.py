"""Pruning: magnitude sparsity and its zeros through fine-tuning, the cubic schedule, sizes, channel pruning of
every model family, pruned model files, and `edgekd prune` end to end."""

import json
import subprocess
import sys
from dataclasses import replace

import cv2
import pytest
import torch

from edgekd.cli import main
from edgekd.compress import (
    compressed_size,
    gradual_schedule,
    magnitude_prune,
    make_permanent,
    sparsity_report,
    structured_prune,
)
from edgekd.config import DETECTION_TRAIN, DistillConfig, TrainConfig
from edgekd.data.classification import load_dataset
from edgekd.data.detection.builtin import face_composite
from edgekd.data.detection.formats import write_yolo_labels
from edgekd.distill import build_method
from edgekd.distill.detection import build_detection_method
from edgekd.distill.schemes import fit_student
from edgekd.distill.schemes.detection import fit_detector
from edgekd.errors import ConfigError
from edgekd.models import build_classifier, load_model, save_model
from edgekd.models.checkpoint import FORMAT
from edgekd.models.detectors import build_detector
from edgekd.workflows.classification import model_meta
from tests.helpers import tiny_splits

CLASSIFIERS = [("resnet", (1, 28, 28)), ("thesis", (1, 28, 28)), ("dscnn", (3, 32, 32))]


def pruned_layers_sparsity(model, names) -> float:
    layers = sparsity_report(model)["layers"]
    return sum(layers[n]["zeros"] for n in names) / sum(layers[n]["params"] for n in names)


def test_gradual_schedule_is_zhu_gupta_cubic():
    assert gradual_schedule(0.8, 4) == pytest.approx([0.4625, 0.7, 0.7875, 0.8])
    assert gradual_schedule(0.5, 1) == [0.5]
    with pytest.raises(ConfigError, match="at least 1"):
        gradual_schedule(0.5, 0)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_prune_hits_the_sparsity_and_keeps_the_ends_dense(scope):
    torch.manual_seed(0)
    model = build_classifier("thesis", 10, 1)
    pruned = magnitude_prune(model, 0.7, scope=scope, exclude=["stages.stage2.0.0"])
    layers = sparsity_report(model)["layers"]
    assert "stages.stage1.0.0" not in pruned and "fc" not in pruned and "stages.stage2.0.0" not in pruned
    assert layers["stages.stage1.0.0"]["zeros"] == layers["fc"]["zeros"] == layers["stages.stage2.0.0"]["zeros"] == 0
    assert pruned_layers_sparsity(model, pruned) == pytest.approx(0.7, abs=1e-3)
    if scope == "layer":
        assert all(layers[n]["sparsity"] == pytest.approx(0.7, abs=0.02) for n in pruned)
    else:  # one threshold over all layers: the layers end up unequal
        assert max(layers[n]["sparsity"] for n in pruned) - min(layers[n]["sparsity"] for n in pruned) > 0.05
    everything = magnitude_prune(build_classifier("thesis", 10, 1), 0.5, dense_ends=False)
    assert "stages.stage1.0.0" in everything and "fc" in everything


def test_zeros_survive_fine_tuning_and_stay_pruned_at_higher_sparsity():
    torch.manual_seed(0)
    splits = tiny_splits()
    model = build_classifier("thesis", 10, 1)
    pruned = magnitude_prune(model, 0.6, scope="layer")
    masks = {n: m.weight_mask.clone() for n, m in model.named_modules() if n in pruned}
    before = {n: m.weight_orig.detach().clone() for n, m in model.named_modules() if n in pruned}
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05)
    fit_student(model, build_method("none", DistillConfig()), splits, cfg, show_progress=False)
    modules = dict(model.named_modules())
    assert any(not torch.equal(modules[n].weight_orig, before[n]) for n in pruned)  # it did train
    make_permanent(model)
    assert not any(hasattr(m, "weight_mask") for m in model.modules())
    for name in pruned:
        assert (modules[name].weight[masks[name] == 0] == 0).all()
    magnitude_prune(model, 0.8, scope="layer")
    for name in pruned:  # pruning further keeps every earlier zero
        assert (modules[name].weight_mask[masks[name] == 0] == 0).all()
    assert pruned_layers_sparsity(model, pruned) == pytest.approx(0.8, abs=1e-3)


def test_zip_size_shrinks_with_sparsity_while_dense_size_does_not():
    torch.manual_seed(0)
    sizes = []
    for sparsity in (None, 0.5, 0.9):
        model = build_classifier("thesis", 10, 1, width=2.0)
        if sparsity:
            magnitude_prune(model, sparsity)
        sizes.append(compressed_size(model))
    assert sizes[0]["dense_bytes"] == sizes[1]["dense_bytes"] == sizes[2]["dense_bytes"]
    assert sizes[0]["zip_bytes"] > sizes[1]["zip_bytes"] > sizes[2]["zip_bytes"]
    assert sizes[2]["zip_bytes"] < 0.4 * sizes[0]["zip_bytes"]
    assert sizes[0]["nonzero_bytes"] > sizes[1]["nonzero_bytes"] > sizes[2]["nonzero_bytes"]


def _classifier(arch, shape):
    return build_classifier(arch, 10, shape[0])


def _detector(scale, shape):
    return build_detector(scale, 2, shape[0], shape[1])


@pytest.mark.parametrize(
    "build, name, shape",
    [(_classifier, arch, shape) for arch, shape in CLASSIFIERS]
    + [(_detector, scale, (3, 64, 64)) for scale in ("n", "s", "m")],
)
def test_structured_pruning_reaches_the_macs_target_and_round_trips(build, name, shape, tmp_path):
    torch.manual_seed(0)
    model = build(name, shape).eval()
    x = torch.rand(2, *shape)
    reference_shape = model(x).shape
    result = structured_prune(model, 0.5, torch.zeros(1, *shape))
    assert result["macs_after"] <= 0.5 * result["macs_before"]
    assert result["macs_after"] >= 0.3 * result["macs_before"]  # steps are small: no large overshoot
    assert result["params_after"] < result["params_before"]
    model.eval()
    y = model(x)
    assert y.shape == reference_shape
    for m in model.modules():  # depthwise convs stay depthwise
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels
    _, features = model.forward_features(x)
    assert model.feature_channels == {k: features[k].shape[1] for k in model.feature_channels}
    save_model(tmp_path / "pruned.pt", model, {"pruning": {"kind": "structured"}})
    loaded, meta = load_model(tmp_path / "pruned.pt")
    assert torch.equal(loaded(x), y) and loaded.feature_channels == model.feature_channels
    assert meta["pruning"]["kind"] == "structured"


def test_structured_pruning_refuses_an_unreachable_target():
    with pytest.raises(ConfigError, match="cannot reach 1% of the MACs"):
        structured_prune(build_classifier("thesis", 10, 1), 0.01, torch.zeros(1, 1, 28, 28), max_channel_ratio=0.3)


def test_old_model_files_still_load(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("dscnn", 10, 1).eval()
    # A file as save_model wrote it before pruning existed: no layer widths.
    torch.save(
        {"format": FORMAT, "spec": model.spec, "state_dict": model.state_dict(), "meta": {"a": 1}}, tmp_path / "o.pt"
    )
    loaded, meta = load_model(tmp_path / "o.pt")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x)) and meta == {"a": 1}
    save_model(tmp_path / "n.pt", model)  # an unpruned model is still written without widths
    assert "layer_widths" not in torch.load(tmp_path / "n.pt", weights_only=True)


# --- edgekd prune end to end -------------------------------------------------------------------------------


def cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A thesis student trained for 2 epochs on the built-in digits, saved as `edgekd train` saves it."""
    torch.manual_seed(0)
    splits = load_dataset("digits")
    model = build_classifier("thesis", 10, 1)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    run = fit_student(model, build_method("none", DistillConfig()), splits, cfg, show_progress=False)
    path = tmp_path_factory.mktemp("digits") / "model.pt"
    save_model(path, run.model, model_meta(run.model, splits, run.test, method="none"))
    return path


def test_cli_prunes_a_classifier_both_kinds(digits_model, tmp_path):
    common = ["--steps", "2", "--epochs", "1", "--threads", "1", "--quiet"]
    result = cli("prune", digits_model, "--kind", "magnitude", "--sparsity", "0.7", "--out", tmp_path / "m", *common)
    assert "zip KB" in result.stdout
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert [s["sparsity"] for s in summary["steps"]] == pytest.approx(gradual_schedule(0.7, 2))
    assert all(s["pruned_layers_sparsity"] == pytest.approx(s["sparsity"], abs=1e-3) for s in summary["steps"])
    before, after = summary["before"], summary["after"]
    assert before["sparsity"] < 0.01 and after["sparsity"] > 0.6  # overall, the dense ends included
    assert after["zip_bytes"] < 0.6 * before["zip_bytes"] and after["dense_bytes"] == before["dense_bytes"]
    assert 0.5 < after["top1"] <= 1 and len(summary["steps"][0]["history"]) == 1
    model, meta = load_model(tmp_path / "m" / "model.pt")
    assert meta["pruning"]["kind"] == "magnitude" and meta["pruning"]["sparsity_after"] == pytest.approx(
        after["sparsity"]
    )
    assert sparsity_report(model)["sparsity"] == pytest.approx(after["sparsity"])

    cli(
        "prune",
        digits_model,
        "--kind",
        "structured",
        "--macs-ratio",
        "0.6",
        "--teacher",
        digits_model,
        "--method",
        "kd",
        "--out",
        tmp_path / "s",
        *common,
    )
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["after"]["macs"] <= 0.6 * summary["before"]["macs"] and "kd" in summary["steps"][0]["history"][0]
    model, meta = load_model(tmp_path / "s" / "model.pt")
    assert meta["pruning"]["macs_after"] == summary["after"]["macs"] and meta["provenance"]["teacher"]
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


@pytest.fixture(scope="module")
def faces_yolo(tmp_path_factory):
    """A tiny YOLO folder of built-in face composites (train 24, val 8 images; no test split: val is used)."""
    root = tmp_path_factory.mktemp("faces")
    for split, n in (("train", 24), ("val", 8)):
        data = face_composite(split, n_images=n)
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, (image, boxes, ids) in enumerate(zip(data.images, data.boxes, data.class_ids, strict=True)):
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            write_yolo_labels(root / "labels" / split / f"{i}.txt", boxes, ids, (image.shape[1], image.shape[0]))
    (root / "classes.txt").write_text("face\n")
    return root


def test_cli_prunes_a_detector_both_kinds(faces_yolo, tmp_path):
    torch.manual_seed(0)
    data = face_composite("train", n_images=24)
    model = build_detector("n", 1, 1, 96)
    cfg = replace(DETECTION_TRAIN, epochs=1, batch_size=8)
    fit_detector(model, build_detection_method("none", DistillConfig()), data, data, data, cfg, show_progress=False)
    save_model(tmp_path / "det.pt", model, {"task": "detect", "dataset": str(faces_yolo), "score_threshold": 0.3})
    common = ["--steps", "1", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--quiet"]
    cli("prune", tmp_path / "det.pt", "--kind", "structured", "--macs-ratio", "0.5", "--out", tmp_path / "s", *common)
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["task"] == "detect" and summary["after"]["macs"] <= 0.5 * summary["before"]["macs"]
    assert 0 <= summary["after"]["map"] <= 1 and "map50" in summary["before"]
    pruned, meta = load_model(tmp_path / "s" / "model.pt")
    assert meta["task"] == "detect" and pruned(torch.rand(1, 1, 96, 96)).shape == (1, 5, 12, 12)

    result = cli("prune", tmp_path / "det.pt", "--sparsity", "0.5", "--out", tmp_path / "m", *common)
    assert "map50" in result.stdout
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["steps"][0]["pruned_layers_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert summary["after"]["zip_bytes"] < summary["before"]["zip_bytes"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsity", "1.5"], "--sparsity must be between 0 and 1"),
        (["--kind", "structured", "--macs-ratio", "0"], "--macs-ratio must be between 0 and 1"),
        (["--steps", "0"], "need --steps >= 1"),
        (["--method", "kd"], "--method kd needs --teacher"),
        (["--method", "response"], "unknown distillation method 'response'"),
    ],
)
def test_bad_prune_arguments_exit_2_with_a_message(args, message, tmp_path, capsys):
    save_model(tmp_path / "thesis.pt", build_classifier("thesis", 10, 1), {"dataset": "digits"})
    assert main(["prune", str(tmp_path / "thesis.pt"), *args, "--out", str(tmp_path / "o")]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_prune_refuses_files_that_are_not_edgekd_models(tmp_path, capsys):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    assert main(["prune", str(tmp_path / "other.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "other.pt: not an edgekd model file" in " ".join(capsys.readouterr().err.split())
