"""Every scheme end to end on a tiny real dataset, teacher frozen in offline, exact resume after a crash."""

from dataclasses import replace

import pytest
import torch

from edgekd.config import DistillConfig, TrainConfig
from edgekd.data.classification import split_labeled
from edgekd.distill import METHODS, build_method
from edgekd.distill.schemes import born_again, distill_offline, distill_online, fit_student, noisy_student
from edgekd.models import build_classifier
from tests.helpers import tiny_splits

CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def splits():
    return tiny_splits()


@pytest.fixture(scope="module")
def teacher(splits):
    torch.manual_seed(0)
    run = fit_student(
        build_classifier("resnet", 10, 1),
        build_method("none", DistillConfig()),
        splits,
        replace(CFG, epochs=3),
        show_progress=False,
    )
    return run.model


def student():
    torch.manual_seed(1)
    return build_classifier("thesis", 10, 1)


@pytest.mark.parametrize("name", [m for m in METHODS if m != "none"])
def test_offline_each_method_trains_and_keeps_teacher_frozen(name, splits, teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    net = student()
    method = build_method(name, DistillConfig(), net, teacher)
    run = distill_offline(net, method, splits, CFG, teacher, show_progress=False)
    assert 0.0 <= run.top1 <= 1.0 and len(run.history) == 2
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert run.history[-1]["loss"] < run.history[0]["loss"] * 1.5  # finite and not diverging


def test_gradients_reach_the_student_only(splits, teacher):
    net = student()
    method = build_method("kd", DistillConfig(), net, teacher)
    teacher.eval().requires_grad_(False)
    teacher.zero_grad(set_to_none=True)
    x = torch.randn(4, 1, 8, 8)
    terms = method(net.forward_features(x), teacher.forward_features(x), torch.tensor([0, 1, 2, 3]))
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in net.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_teacher_cache_equals_live_teacher(splits, teacher, tmp_path):
    from edgekd.distill.teacher_cache import teacher_outputs

    cached = teacher_outputs(teacher, splits.train, ("embedding",), splits.mean, splits.std, tmp_path)
    again = teacher_outputs(teacher, splits.train, ("embedding",), splits.mean, splits.std, tmp_path)
    assert len(list(tmp_path.glob("teacher-*.pt"))) == 1 and torch.equal(
        cached["teacher_logits"], again["teacher_logits"]
    )
    from edgekd.train.metrics import predict

    live = predict(teacher, splits.train, splits.mean, splits.std)
    assert torch.allclose(cached["teacher_logits"], torch.from_numpy(live), atol=1e-5)


def test_online_mutual_learning_updates_both(splits):
    peer = build_classifier("resnet", 10, 1)
    before = [p.clone() for p in peer.parameters()]
    run = distill_online(
        student(), build_method("kd", DistillConfig(temperature=1.0)), splits, CFG, peer, show_progress=False
    )
    assert "teacher_test" in run.extra and any("teacher_kd" in k for k in run.history[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, peer.parameters(), strict=True))


def test_self_distillation_generations(splits):
    run = born_again(student, build_method("kd", DistillConfig()), splits, CFG, generations=2, show_progress=False)
    assert len(run.extra["generations"]) == 3


def test_noisy_student_reports_against_teacher(splits, teacher):
    labeled, unlabeled = split_labeled(splits.train, 50, seed=0)
    make = lambda: build_classifier("thesis", 10, 1, width=1.5, dropout=0.3)  # noqa: E731
    run = noisy_student(teacher, make, labeled, unlabeled, splits, CFG, iterations=2, show_progress=False)
    assert [r["round"] for r in run.extra["rounds"]] == [1, 2]
    assert run.extra["rounds"][0]["pseudo_labeled"] == len(unlabeled)
    assert run.extra["student_beats_teacher"] == (run.top1 > run.extra["initial_teacher_top1"])


def _train(splits, teacher, run_dir, crash_at=None, resume=False):
    torch.manual_seed(3)
    net = build_classifier("thesis", 10, 1, dropout=0.2)
    method = build_method("kd", DistillConfig(), net, teacher)
    if crash_at is not None:
        original = method.set_progress

        def crash(fraction):
            if fraction >= crash_at:
                raise KeyboardInterrupt
            original(fraction)

        method.set_progress = crash
    cfg = replace(CFG, epochs=3)
    return distill_offline(net, method, splits, cfg, teacher, run_dir=run_dir, resume=resume, show_progress=False)


def test_resume_after_crash_gives_identical_weights(splits, teacher, tmp_path):
    straight = _train(splits, teacher, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        _train(splits, teacher, tmp_path / "crashed", crash_at=0.8)  # dies inside epoch 3
    state = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2
    resumed = _train(splits, teacher, tmp_path / "crashed", resume=True)
    assert len(resumed.history) == 3
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
