"""Feature imitation for detectors, FitNets-style (Romero et al. ICLR 2015, arXiv:1412.6550) with the
object-region mask of Wang et al., "Distilling Object Detectors with Fine-grained Feature Imitation",
CVPR 2019 (arXiv:1906.03609): a 1x1-conv adapter maps the student's neck to the teacher's neck channels and
the squared error is averaged over the cells near objects (Gaussian target > MASK_LEVEL), or over all cells
when `masked` is off."""

import numpy as np
from torch import nn

from edgekd.distill.detection.base import DetectionMethod
from edgekd.errors import ConfigError
from edgekd.models.detection_loss import build_targets

MASK_LEVEL = 0.1
LAYER = "neck"


class FeatureImitation(DetectionMethod):
    """Labels + beta * (masked) MSE between adapted student and teacher neck features."""

    name = "feature"
    paper = "Romero et al. ICLR 2015; Wang et al. CVPR 2019 (fine-grained imitation mask)"

    def __init__(self, cfg, student=None, teacher=None):
        super().__init__(cfg, student, teacher)
        if student is None or teacher is None:
            raise ConfigError("feature imitation needs the student and teacher detectors")
        s_ch, t_ch = student.feature_channels[LAYER], teacher.feature_channels[LAYER]
        self.adapter = nn.Sequential(nn.Conv2d(s_ch, t_ch, 1, bias=False), nn.BatchNorm2d(t_ch))
        self.masked = cfg.feature_masked

    def terms(self, student, teacher, batch):
        mapped, target = self.adapter(student[1][LAYER]), teacher[1][LAYER].float()
        error = (mapped - target).pow(2).mean(1)  # (B, H, W)
        if self.masked:
            agnostic = [np.zeros(len(b), np.int64) for b in batch["boxes"]]  # one mask for all classes
            heat = build_targets(batch["boxes"], agnostic, 1, tuple(error.shape[1:]), self.stride)
            mask = (heat["heatmap"].amax(1) > MASK_LEVEL).float()
            imitation = (error * mask).sum() / mask.sum().clamp_min(1.0)
        else:
            imitation = error.mean()
        return {**self.label_terms(student, batch), "imitation": self.cfg.beta * imitation}
