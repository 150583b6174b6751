"""Feature-based distillation with hints.

Romero, Ballas, Kahou, Chassang, Gatta, Bengio. "FitNets: Hints for Thin Deep Nets." ICLR 2015.
arXiv:1412.6550. A learned adapter (1x1 conv + BN) maps each chosen student feature map to the paired
teacher map's channels; the loss is the mean squared error between them. Pairs are named
"student_layer:teacher_layer"; "auto" pairs the student's middle stage with the teacher stage of the same
spatial size. Trained in one stage with cross-entropy (the paper pre-trains the lower half first).
"""

import torch.nn.functional as F
from torch import nn

from edgekd.distill.base import DistillMethod, hard_label_ce
from edgekd.errors import ConfigError


def parse_pairs(pairs: list[str], student_channels: dict[str, int], teacher_channels: dict[str, int]):
    if pairs == ["auto"]:
        student_maps = [n for n in student_channels if n.startswith("stage")]
        teacher_maps = [n for n in teacher_channels if n.startswith("stage")]
        return [(student_maps[len(student_maps) // 2], teacher_maps[len(teacher_maps) // 2])]
    parsed = []
    for pair in pairs:
        student_layer, sep, teacher_layer = pair.partition(":")
        if not sep or student_layer not in student_channels or teacher_layer not in teacher_channels:
            raise ConfigError(
                f"hint pair '{pair}': expected student_layer:teacher_layer with student layers "
                f"{list(student_channels)} and teacher layers {list(teacher_channels)}"
            )
        parsed.append((student_layer, teacher_layer))
    return parsed


class FitNets(DistillMethod):
    """Hint loss between adapted student feature maps and teacher feature maps."""

    name = "fitnets"
    kind = "feature"
    paper = "Romero et al. ICLR 2015, arXiv:1412.6550"

    def __init__(self, cfg, student_channels=None, teacher_channels=None):
        super().__init__(cfg, student_channels, teacher_channels)
        if not student_channels or not teacher_channels:
            raise ConfigError("fitnets needs the student's and teacher's feature channels")
        self.pairs = parse_pairs(list(cfg.hint_pairs), student_channels, teacher_channels)
        self.adapters = nn.ModuleDict(
            {
                s: nn.Sequential(
                    nn.Conv2d(student_channels[s], teacher_channels[t], 1, bias=False),
                    nn.BatchNorm2d(teacher_channels[t]),
                )
                for s, t in self.pairs
            }
        )

    @property
    def teacher_features(self):
        return tuple(t for _, t in self.pairs)

    def terms(self, student, teacher, targets):
        hint = 0.0
        for s, t in self.pairs:
            mapped, target = self.adapters[s](student[1][s]), teacher[1][t].float()
            if mapped.shape[-2:] != target.shape[-2:]:
                mapped = F.adaptive_avg_pool2d(mapped, target.shape[-2:])
            hint = hint + F.mse_loss(mapped, target)
        return {"ce": hard_label_ce(student[0], targets), "hint": self.cfg.beta * hint}
