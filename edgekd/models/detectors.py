"""Anchor-free single-stage detectors small enough for a microcontroller or a Raspberry Pi.

The design is CenterNet-lite (Zhou et al. 2019, "Objects as Points", arXiv:1904.07850) with FCOS-style box
regression (Tian et al. ICCV 2019, arXiv:1904.01355):

- backbone: a strided conv-BN-ReLU6 stem, then MobileNet-v1 depthwise-separable blocks (Howard et al. 2017)
  down to stride 32;
- neck: FPN-lite (Lin et al. CVPR 2017) top-down path, a 1x1 lateral conv per level, nearest x2 upsampling
  and an add, then one depthwise-separable smoothing block;
- head: ONE output at stride 8, a single NCHW tensor of K + 4 channels: K class-heatmap logits (sigmoid and
  3x3 peak picking happen in post-processing, the heatmap is trained with focal loss) and 4 distances
  (left, top, right, bottom) from the cell centre to the box sides in units of the stride, made
  non-negative by a ReLU.

Why stride 8 and not CenterNet's 4: at stride 4 every neck and head layer runs on 4x the cells, so its
MACs, its activations (held beside the skip tensor) and the map the device must decode all grow 4x, paid
on an MCU in latency and arena. CenterNet wants stride 4 because it regresses sizes from a quantised
centre; ltrb distances measured from each cell centre keep sub-cell precision, so stride 8 loses little
for faces and objects of about 12 px and up (FCOS's finest level is also stride 8).

Only ops that export cleanly to ONNX and full-int8 TFLite and that TFLite Micro runs are used: Conv2d,
depthwise Conv2d, add, ReLU/ReLU6, nearest x2 resize and concat. BatchNorm folds into the convs at
export. There is no exp (box sizes are linear), no TILE-producing op and no sigmoid in the graph.

Every op of the deployed graph is a module (`ConvBNAct`, `Upsample2x`, `Add`, `Concat`) so that
`activation_peak_bytes` can measure tensor liveness with forward hooks.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from edgekd.errors import ConfigError

STRIDE = 8
BASE_WIDTHS = (16, 32, 64, 128, 256)  # stem, then stages at stride 4, 8, 16, 32
BASE_DEPTHS = (1, 2, 2, 1)  # depthwise-separable blocks per stage
BASE_NECK = 64
SCALES = {
    "n": {"width": 0.5, "depth": 1.0},
    "s": {"width": 1.0, "depth": 1.0},
    "m": {"width": 1.5, "depth": 2.0},
}
PRESETS = {
    "mcu-face": {"scale": "n", "num_classes": 1, "in_channels": 1, "input_size": 96},
    "pi-face": {"scale": "s", "num_classes": 1, "in_channels": 3, "input_size": 320},
    "pi-object": {"scale": "m", "num_classes": 80, "in_channels": 3, "input_size": 320},
}
HEATMAP_PRIOR = 0.01  # initial foreground probability, as in RetinaNet (Lin et al. 2017)


def _round_channels(channels: float, multiple: int = 8) -> int:
    # Multiples of 8 keep int8 SIMD kernels (CMSIS-NN, XNNPACK) on their fast paths.
    return max(multiple, int(round(channels / multiple)) * multiple)


class ConvBNAct(nn.Module):
    """Conv -> BatchNorm -> activation: one fused op (one kernel, one output tensor) once exported."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu6",
        bn: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        activations = {"relu6": nn.ReLU6(inplace=True), "relu": nn.ReLU(inplace=True), None: nn.Identity()}
        self.act = activations[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def dw_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNet-v1 block: 3x3 depthwise conv then 1x1 pointwise conv, both BN + ReLU6."""
    return nn.Sequential(ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1))


class Upsample2x(nn.Module):
    """Nearest-neighbour x2: RESIZE_NEAREST_NEIGHBOR in TFLite (a repeat-based upsample would become TILE)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Concat(nn.Module):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, dim=1)


class FPNLite(nn.Module):
    """Top-down path from strides 8/16/32 to one stride-8 map: lateral 1x1, upsample x2, add, smooth."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int):
        super().__init__()
        # Linear laterals as in FPN: the add mixes levels before any clipping.
        self.lateral8, self.lateral16, self.lateral32 = (ConvBNAct(c, channels, 1, act=None) for c in in_channels)
        self.up32, self.up16 = Upsample2x(), Upsample2x()
        self.add16, self.add8 = Add(), Add()
        self.smooth = dw_separable(channels, channels, 1)

    def forward(self, c8: torch.Tensor, c16: torch.Tensor, c32: torch.Tensor) -> torch.Tensor:
        p16 = self.add16(self.lateral16(c16), self.up32(self.lateral32(c32)))
        p8 = self.add8(self.lateral8(c8), self.up16(p16))
        return self.smooth(p8)


class Detector(nn.Module):
    """Backbone -> FPN-lite -> stride-8 head of K heatmap logits + 4 ltrb distances (in strides)."""

    stride = STRIDE

    def __init__(
        self, num_classes: int, in_channels: int, input_size: tuple[int, int], width: float = 1.0, depth: float = 1.0
    ):
        super().__init__()
        widths = [_round_channels(w * width) for w in BASE_WIDTHS]
        depths = [max(1, round(d * depth)) for d in BASE_DEPTHS]
        neck = _round_channels(BASE_NECK * width)
        stages = {"stem": ConvBNAct(in_channels, widths[0], 3, stride=2)}
        cin = widths[0]
        for s, (cout, blocks) in enumerate(zip(widths[1:], depths, strict=True)):
            stages[f"stage{s + 1}"] = nn.Sequential(
                *[dw_separable(cin if b == 0 else cout, cout, 2 if b == 0 else 1) for b in range(blocks)]
            )
            cin = cout
        self.stages = nn.ModuleDict(stages)
        self.neck = FPNLite((widths[2], widths[3], widths[4]), neck)
        self.heatmap = ConvBNAct(neck, num_classes, 1, act=None, bn=False)
        self.box = ConvBNAct(neck, 4, 1, act="relu", bn=False)
        self.concat = Concat()
        self.num_classes = num_classes
        self.input_shape = (in_channels, *input_size)
        self.feature_channels = {name: widths[i] for i, name in enumerate(stages)} | {"neck": neck}
        self._init_head()

    def _init_head(self) -> None:
        # Start every location at a low foreground probability so the many negatives do not swamp the
        # focal loss at step one (Lin et al. 2017, sec. 3.3).
        nn.init.normal_(self.heatmap.conv.weight, std=0.01)
        nn.init.constant_(self.heatmap.conv.bias, -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))
        # A positive bias keeps the box ReLU alive at the start: every location predicts a 2x2-stride box.
        nn.init.normal_(self.box.conv.weight, std=0.01)
        nn.init.constant_(self.box.conv.bias, 1.0)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {}
        for name, stage in self.stages.items():
            x = stage(x)
            feats[name] = x
        neck = self.neck(feats["stage2"], feats["stage3"], feats["stage4"])
        feats["neck"] = neck
        return self.concat(self.heatmap(neck), self.box(neck)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    @property
    def feature_names(self) -> list[str]:
        return list(self.feature_channels)


def build_detector(
    scale: str = "n", num_classes: int = 1, in_channels: int = 3, input_size: int | tuple[int, int] = 320
) -> Detector:
    """A detector of scale n / s / m. `input_size` (int or (h, w)) must be a multiple of 32.

    `model.spec` holds these arguments, so `build_detector(**{k: v for k, v in spec.items() if k != "arch"})`
    rebuilds the model.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown detector scale '{scale}'; choose one of {', '.join(SCALES)}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or any(s <= 0 or s % 32 for s in size):
        raise ConfigError(
            f"detector input size {input_size} must be a positive multiple of 32 "
            "(the stride-32 level is upsampled twice onto the stride-8 map)"
        )
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(
            f"a detector needs num_classes >= 1 and in_channels >= 1, got {num_classes} and {in_channels}"
        )
    model = Detector(num_classes, in_channels, size, **SCALES[scale])
    model.spec = {
        "arch": "detector",
        "num_classes": num_classes,
        "in_channels": in_channels,
        "scale": scale,
        "input_size": input_size,
    }
    return model


def build_preset(name: str, **overrides) -> Detector:
    """A preset (`mcu-face`, `pi-face`, `pi-object`), with any of build_detector's arguments overridden."""
    if name not in PRESETS:
        raise ConfigError(f"unknown detector preset '{name}'; choose one of {', '.join(PRESETS)}")
    return build_detector(**(PRESETS[name] | overrides))


DEPLOYED_OPS = (ConvBNAct, Upsample2x, Add, Concat)


def activation_peak_bytes(model: nn.Module, input_shape: tuple[int, ...], bytes_per_element: int = 1) -> int:
    """Peak activation memory of one inference (batch 1), int8 by default.

    At each deployed op the live tensors are its inputs, its output and every tensor produced earlier and
    still awaited by a later op (the skip tensors the neck holds). This is the tensor-liveness sum a
    TFLite Micro arena planner reaches at best. Ops are the modules in DEPLOYED_OPS (ConvBNAct counts as
    one op since BN and the activation fuse into the conv); a plain model's leaf modules are used instead.
    """
    fused = [m for m in model.modules() if isinstance(m, DEPLOYED_OPS)]
    inside_fused = {id(child) for m in fused for child in m.modules() if child is not m}
    ops = [m for m in fused if id(m) not in inside_fused]
    if not ops:
        ops = [m for m in model.modules() if not list(m.children())]

    calls: list[tuple[list[torch.Tensor], torch.Tensor]] = []

    def record(module, inputs, output):
        calls.append(([t for t in inputs if isinstance(t, torch.Tensor)], output))

    handles = [m.register_forward_hook(record) for m in ops]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, *input_shape)
            y = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    # calls holds a reference to every tensor, so id() stays unique for the whole analysis.
    produced, last_used, size = {id(x): -1}, {}, {id(x): x.numel()}
    for step, (inputs, output) in enumerate(calls):
        for t in inputs:
            last_used[id(t)] = step
        produced.setdefault(id(output), step)
        size[id(output)] = output.numel()
    last_used[id(y)] = len(calls)  # the model output lives until it is read
    peak = 0
    for step in range(len(calls)):
        live = sum(n for key, n in size.items() if produced[key] <= step <= last_used.get(key, produced[key]))
        peak = max(peak, live)
    return peak * bytes_per_element
