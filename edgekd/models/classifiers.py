"""Teacher and student classifiers with width and depth multipliers.

- `resnet`: a ResNet-style teacher (basic blocks, He et al. 2016) with optional stochastic depth.
- `thesis`: the thesis' student, 3 blocks of conv-BN-conv-BN-pool and a dense layer.
- `dscnn`: a depthwise-separable MCU-class student (MobileNet-style blocks, as in DS-CNN for keyword spotting).

Each model is a sequence of named stages; `forward_features` returns every stage's output plus
`embedding` (the pooled vector before the classifier) so that feature- and relation-based methods can
name the layers they pair.
"""

from __future__ import annotations

import torch
from torch import nn


def _channels(base: int, width: float) -> int:
    return max(4, int(round(base * width / 4)) * 4)


def conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample during training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop_path: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), conv_bn(cout, cout, relu=False))
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        return torch.relu(self.shortcut(x) + self.drop_path(self.body(x)))


class Classifier(nn.Module):
    """Named stages -> global average pool -> (dropout) -> linear."""

    def __init__(self, stages: dict[str, nn.Module], channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self.feature_channels = {name: _out_channels(m) for name, m in stages.items()} | {"embedding": channels}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {}
        for name, stage in self.stages.items():
            x = stage(x)
            feats[name] = x
        emb = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        feats["embedding"] = emb
        return self.fc(self.dropout(emb)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    @property
    def feature_names(self) -> list[str]:
        return list(self.feature_channels)


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def resnet(
    num_classes: int,
    in_channels: int = 1,
    width: float = 1.0,
    depth: int = 2,
    dropout: float = 0.0,
    drop_path: float = 0.0,
) -> Classifier:
    """ResNet-style teacher: stride-2 stem, three stages of `depth` basic blocks at 1x, 2x, 4x width."""
    widths = [_channels(32, width), _channels(64, width), _channels(128, width)]
    stages = {"stem": conv_bn(in_channels, widths[0], stride=2)}
    cin = widths[0]
    total = 3 * depth
    for s, cout in enumerate(widths):
        blocks = []
        for b in range(depth):
            rate = drop_path * (s * depth + b) / max(1, total - 1)  # linearly increasing, as in the paper
            blocks.append(BasicBlock(cin, cout, stride=2 if (b == 0 and s > 0) else 1, drop_path=rate))
            cin = cout
        stages[f"stage{s + 1}"] = nn.Sequential(*blocks)
    return Classifier(stages, cin, num_classes, dropout)


def thesis_student(
    num_classes: int,
    in_channels: int = 1,
    width: float = 1.0,
    depth: int = 1,
    dropout: float = 0.0,
    drop_path: float = 0.0,
) -> Classifier:
    """The thesis' student: 3 blocks of (conv-BN-ReLU) x 2*depth then 2x2 max-pool, then a dense layer."""
    widths = [_channels(8, width), _channels(16, width), _channels(32, width)]
    stages, cin = {}, in_channels
    for s, cout in enumerate(widths):
        layers = []
        for i in range(2 * depth):
            layers.append(conv_bn(cin if i == 0 else cout, cout))
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        stages[f"stage{s + 1}"] = nn.Sequential(*layers)
        cin = cout
    return Classifier(stages, cin, num_classes, dropout)


def dw_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn(cin, cin, stride, groups=cin),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def dscnn(
    num_classes: int,
    in_channels: int = 1,
    width: float = 1.0,
    depth: int = 1,
    dropout: float = 0.0,
    drop_path: float = 0.0,
) -> Classifier:
    """MCU-class student: a strided stem then depthwise-separable blocks (MobileNet v1 style)."""
    widths = [_channels(16, width), _channels(32, width), _channels(64, width)]
    stages = {"stem": conv_bn(in_channels, widths[0], stride=2)}
    cin = widths[0]
    for s, cout in enumerate(widths):
        blocks = [dw_separable(cin if b == 0 else cout, cout, 2 if (b == 0 and s > 0) else 1) for b in range(depth)]
        stages[f"stage{s + 1}"] = nn.Sequential(*blocks)
        cin = cout
    return Classifier(stages, cin, num_classes, dropout)


CLASSIFIERS = {"resnet": resnet, "thesis": thesis_student, "dscnn": dscnn}


def build_classifier(arch: str, num_classes: int, in_channels: int = 1, **kwargs) -> Classifier:
    if arch not in CLASSIFIERS:
        from edgekd.errors import ConfigError

        raise ConfigError(f"unknown model '{arch}'; choose one of {', '.join(CLASSIFIERS)}")
    model = CLASSIFIERS[arch](num_classes, in_channels, **kwargs)
    model.spec = {"arch": arch, "num_classes": num_classes, "in_channels": in_channels, **kwargs}
    return model
