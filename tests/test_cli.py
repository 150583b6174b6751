"""The `edgekd` command as users run it: a real subprocess, its exit code, its files and its messages."""

import json
import subprocess
import sys

import pytest

from tests.helpers import write_idx_dataset


def edgekd(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"edgekd {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_help_lists_every_method_and_scheme():
    out = edgekd("distill", "--help").stdout
    for word in ("kd", "fitnets", "rkd", "sp", "dkd", "offline", "online", "self", "noisy_student"):
        assert word in out
    for command in ("train", "distill", "tune", "eval"):
        assert edgekd(command, "--help").returncode == 0


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    edgekd("train", "--data", "digits", "--model", "resnet", "--epochs", "2", "--out", out, "--quiet")
    return out


def test_train_writes_model_and_summary(teacher_dir):
    summary = json.loads((teacher_dir / "summary.json").read_text())
    assert (teacher_dir / "model.pt").exists() and (teacher_dir / "checkpoint.pt").exists()
    assert summary["model"]["params"] > 0 and summary["model"]["macs"] > 0
    assert len(summary["history"]) == 2 and 0.3 < summary["test"]["top1"] <= 1.0
    assert len(summary["test"]["confusion_matrix"]) == 10


def test_distill_and_eval(teacher_dir, tmp_path):
    out = tmp_path / "kd"
    edgekd(
        "distill",
        "--data",
        "digits",
        "--teacher",
        teacher_dir / "model.pt",
        "--method",
        "kd",
        "--alpha",
        "0.2",
        "-T",
        "3",
        "--epochs",
        "2",
        "--out",
        out,
        "--quiet",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distill"]["alpha"] == 0.2 and summary["distill"]["temperature"] == 3.0
    assert summary["teacher"]["test_top1"] is not None
    result = edgekd("eval", out / "model.pt", "--json", tmp_path / "eval.json")
    assert "confusion matrix" in result.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["test"]["top1"] == pytest.approx(summary["test"]["top1"])


def test_resume_continues_a_finished_run_without_retraining(teacher_dir, tmp_path):
    out = tmp_path / "again"
    edgekd("train", "--data", "digits", "--model", "thesis", "--epochs", "2", "--out", out, "--quiet")
    first = json.loads((out / "summary.json").read_text())["test"]["top1"]
    result = edgekd(
        "train", "--data", "digits", "--model", "thesis", "--epochs", "2", "--out", out, "--quiet", "--resume"
    )
    assert "epoch 1/2" not in result.stderr  # nothing re-trained
    assert json.loads((out / "summary.json").read_text())["test"]["top1"] == first
    changed = edgekd(
        "train",
        "--data",
        "digits",
        "--model",
        "thesis",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--out",
        out,
        "--resume",
        check=False,
    )
    assert changed.returncode == 2 and "settings changed" in changed.stderr and "lr" in changed.stderr


def test_tune_is_resumable(teacher_dir, tmp_path):
    args = [
        "tune",
        "--data",
        "digits",
        "--teacher",
        teacher_dir / "model.pt",
        "--epochs",
        "1",
        "--out",
        tmp_path,
        "--quiet",
    ]
    edgekd(*args, "--trials", "2")
    first = json.loads((tmp_path / "tune.json").read_text())
    assert len(first["trials"]) == 2 and 0 <= first["best"]["params"]["alpha"] <= 1
    result = edgekd(*args, "--trials", "3")
    trials = json.loads((tmp_path / "tune.json").read_text())["trials"]
    assert len(trials) == 3 and "best trial" in result.stdout
    assert trials[:2] == first["trials"]  # the study resumed from SQLite instead of starting over


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/nonexistent/ds", "--out", "{tmp}/o"], "/nonexistent/ds: no such dataset folder"),
        (["eval", "{tmp}/missing.pt", "--data", "digits"], "missing.pt: model file not found"),
        (["eval", "{tmp}/garbage.pt", "--data", "digits"], "garbage.pt: not a readable model file"),
        (["distill", "--data", "digits", "--out", "{tmp}/o"], "offline distillation needs --teacher"),
        (["distill", "--data", "digits", "--scheme", "noisy_student", "--out", "{tmp}/o"], "needs unlabeled images"),
        (["train", "--data", "{tmp}/badidx", "--out", "{tmp}/o"], "12 labels for 120 images"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, args, message):
    (tmp_path / "garbage.pt").write_bytes(b"this is not a model")
    folder = write_idx_dataset(tmp_path / "badidx")
    import numpy as np

    from tests.helpers import write_idx

    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(12, np.uint8))
    result = edgekd(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert result.returncode == 2, result.stderr
    assert message.format(tmp=tmp_path) in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_class_count_is_rejected(teacher_dir, tmp_path):
    folder = write_idx_dataset(tmp_path / "five", classes=5)
    result = edgekd("eval", teacher_dir / "model.pt", "--data", folder, check=False)
    assert result.returncode == 2 and "predicts 10 classes" in result.stderr
