"""Each distillation loss against values computed independently (numpy / by hand)."""

import numpy as np
import pytest
import torch

from edgekd.config import DistillConfig
from edgekd.distill import build_method
from edgekd.distill.dkd import dkd_loss
from edgekd.distill.rkd import rkd_angle, rkd_distance
from edgekd.distill.sp import sp_loss


def softmax(z, t=1.0):
    e = np.exp(z / t - (z / t).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def kl(p, q):
    return float((p * (np.log(p) - np.log(q))).sum(1).mean())


S = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
T_ = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 2.5]])
Y = np.array([1, 2])


def out(logits, **feats):
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in feats.items()}
    return torch.tensor(logits, dtype=torch.float32), tensors


def test_hinton_kd_matches_formula():
    cfg = DistillConfig(alpha=0.3, temperature=2.0)
    terms = build_method("kd", cfg)(out(S), out(T_), torch.tensor(Y))
    ce = -np.log(softmax(S)[np.arange(2), Y]).mean()
    soft = kl(softmax(T_, 2.0), softmax(S, 2.0)) * 4.0
    assert terms["ce"].item() == pytest.approx(0.3 * ce, rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.7 * soft, rel=1e-5)


def test_kd_by_hand_two_classes():
    # Student logits [0, 0] (p = .5/.5), teacher [ln 3, 0] (p = .75/.25), T = 1, alpha = 0:
    # KL = .75 ln(.75/.5) + .25 ln(.25/.5) = 0.1308120...
    terms = build_method("kd", DistillConfig(alpha=0.0, temperature=1.0))(
        out([[0.0, 0.0]]), out([[np.log(3.0), 0.0]]), torch.tensor([0])
    )
    assert terms["kd"].item() == pytest.approx(0.75 * np.log(1.5) + 0.25 * np.log(0.5), abs=1e-6)
    assert terms["ce"].item() == 0.0


def test_unlabeled_samples_only_get_the_soft_term():
    terms = build_method("kd", DistillConfig(alpha=0.5))(out(S), out(T_), torch.tensor([-1, -1]))
    assert terms["ce"].item() == 0.0 and terms["kd"].item() > 0


def test_dkd_matches_formula_and_sums_like_kd_when_balanced():
    t = 4.0
    tckd, nckd = dkd_loss(
        torch.tensor(S, dtype=torch.float32), torch.tensor(T_, dtype=torch.float32), torch.tensor(Y), 1.0, 1.0, t
    )
    ps, pt = softmax(S, t), softmax(T_, t)
    gt = np.eye(3)[Y].astype(bool)
    bs = np.stack([(ps * gt).sum(1), (ps * ~gt).sum(1)], 1)
    bt = np.stack([(pt * gt).sum(1), (pt * ~gt).sum(1)], 1)
    qs = np.where(gt, 0, ps) / (ps * ~gt).sum(1, keepdims=True)
    qt = np.where(gt, 0, pt) / (pt * ~gt).sum(1, keepdims=True)

    def nt(p, q):  # KL that skips the zeroed target entries
        safe_p, safe_q = np.where(p > 0, p, 1), np.where(q > 0, q, 1)
        return float(np.where(p > 0, p * (np.log(safe_p) - np.log(safe_q)), 0).sum(1).mean())

    assert tckd.item() == pytest.approx(kl(bt, bs) * t * t, rel=1e-4)
    assert nckd.item() == pytest.approx(nt(qt, qs) * t * t, rel=1e-3)
    # The paper's identity: KD = TCKD + (1 - p_t^target) * NCKD, per sample.
    kd = kl(pt, ps) * t * t
    per_sample = []
    for i in range(2):
        b = kl(bt[i : i + 1], bs[i : i + 1]) + (1 - pt[i, Y[i]]) * nt(qt[i : i + 1], qs[i : i + 1])
        per_sample.append(b * t * t)
    assert np.mean(per_sample) == pytest.approx(kd, rel=1e-4)


def test_dkd_warms_up():
    method = build_method("dkd", DistillConfig())
    method.set_progress(0.0)
    assert method(out(S), out(T_), torch.tensor(Y))["nckd"].item() == 0.0
    method.set_progress(0.5)
    assert method(out(S), out(T_), torch.tensor(Y))["nckd"].item() > 0.0


def test_rkd_terms_by_hand():
    # Distances are normalised by their mean, so a scaled copy has zero distance loss but a rotated/stretched one not.
    e = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert rkd_distance(e * 3.0, e).item() == pytest.approx(0.0, abs=1e-7)
    assert rkd_angle(e * 3.0, e).item() == pytest.approx(0.0, abs=1e-6)
    stretched = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    d_s = np.array([[0, 2, 1], [2, 0, np.sqrt(5)], [1, np.sqrt(5), 0]])
    d_t = np.array([[0, 1, 1], [1, 0, np.sqrt(2)], [1, np.sqrt(2), 0]])
    d_s, d_t = d_s / d_s[d_s > 0].mean(), d_t / d_t[d_t > 0].mean()
    diff = np.abs(d_s - d_t)
    huber = np.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert rkd_distance(stretched, e).item() == pytest.approx(huber, rel=1e-5)


def test_sp_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 1.0]])

    def g(x):
        m = x @ x.T
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    expected = ((g(a) - g(b)) ** 2).sum() / 4
    assert sp_loss(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(expected, rel=1e-6)
    assert sp_loss(torch.tensor(a), torch.tensor(a * 5)).item() == pytest.approx(0.0, abs=1e-9)


def test_fitnets_hint_is_mse_after_adapter():
    method = build_method(
        "fitnets",
        DistillConfig(beta=2.0, hint_pairs=["stage2:stage1"]),
        type("S", (), {"feature_channels": {"stage1": 2, "stage2": 3}})(),
        type("T", (), {"feature_channels": {"stage1": 4}})(),
    )
    method.eval()  # BN in eval with fresh stats = identity up to eps; set the adapter to a known linear map
    conv = method.adapters["stage2"][0]
    with torch.no_grad():
        conv.weight.zero_()
        for i in range(3):
            conv.weight[i, i] = 1.0
    s_feat = torch.randn(2, 3, 4, 4)
    t_feat = torch.randn(2, 4, 4, 4)
    terms = method((torch.zeros(2, 3), {"stage2": s_feat}), (None, {"stage1": t_feat}), torch.tensor([0, 1]))
    mapped = torch.cat([s_feat, torch.zeros(2, 1, 4, 4)], 1) / np.sqrt(1 + 1e-5)
    assert terms["hint"].item() == pytest.approx(2.0 * torch.mean((mapped - t_feat) ** 2).item(), rel=1e-4)


def test_fitnets_rejects_unknown_layers():
    from edgekd.errors import ConfigError

    with pytest.raises(ConfigError, match="hint pair 'stage9:stage1'"):
        build_method(
            "fitnets",
            DistillConfig(hint_pairs=["stage9:stage1"]),
            type("S", (), {"feature_channels": {"stage1": 2}})(),
            type("T", (), {"feature_channels": {"stage1": 4}})(),
        )
