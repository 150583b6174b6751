"""Small int8 .tflite models for the MCU tests, built through the project's own export route (litert-torch +
ai-edge-quantizer), and the LiteRT oracle: the interpreter with TFLite's reference kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.export.tflite_export import export_tflite


class KernelZoo(nn.Module):
    """One of every kernel the MCU compiler lowers: padded strided conv (PAD folded), depthwise with a depth
    multiplier and ReLU6, 1x1 conv, residual ADD, max/average pool, logistic, nearest 2x upsampling, tanh,
    channel concat, global average pool (MEAN) and a fully connected layer."""

    def __init__(self, c: int):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, 2, 1)
        self.dw = nn.Conv2d(c, 2 * c, 3, 1, 1, groups=c)
        self.pw = nn.Conv2d(2 * c, c, 1)
        self.head = nn.Conv2d(c, c, 3, 1, 1)
        self.left, self.right = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c, c - c // 2, 1)
        self.fc = nn.Linear(c, 5)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        p = self.pw(nn.functional.relu6(self.dw(a))) + a
        v = torch.sigmoid(nn.functional.avg_pool2d(p, 2)) + nn.functional.max_pool2d(p, 2)
        h = torch.tanh(self.head(nn.functional.interpolate(v, scale_factor=2, mode="nearest")))
        h = torch.cat([self.left(h), self.right(h)], 1)
        return self.fc(nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


class DepthwiseZoo(nn.Module):
    """The depthwise shapes the Cortex-M4 plane kernel takes: one input channel broadcast to eight (a gray
    stem), strides 1 and 2 on odd and even sizes, channel counts that are not multiples of four, ReLU6; and a 5x5
    depthwise, which takes the four-lane kernel instead."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, 2, 1)  # TFLite makes a 1-channel conv a depthwise with multiplier 8
        self.dw1 = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.pw1 = nn.Conv2d(8, 16, 1)
        self.dw2 = nn.Conv2d(16, 16, 3, 2, 1, groups=16)
        self.pw2 = nn.Conv2d(16, 6, 1)
        self.dw3 = nn.Conv2d(6, 6, 3, 1, 1, groups=6)
        self.pw3 = nn.Conv2d(6, 12, 1)
        self.valid = nn.Conv2d(12, 12, 3, 1, 0, groups=12)
        self.dw4 = nn.Conv2d(12, 12, 3, 2, 1, groups=12)
        self.dw5 = nn.Conv2d(12, 12, 5, 1, 2, groups=12)
        self.head = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        a = torch.relu(self.pw1(nn.functional.relu6(self.dw1(a))))
        a = self.pw2(torch.relu(self.dw2(a)))
        a = torch.relu(self.valid(torch.relu(self.pw3(self.dw3(a)))))
        return self.head(self.dw5(torch.relu(self.dw4(a))))


def depthwise_zoo(folder: Path, size: int = 30) -> Path:
    torch.manual_seed(1)
    model = DepthwiseZoo().eval()
    calibration = np.random.default_rng(1).uniform(0, 1, (16, 1, size, size)).astype(np.float32)
    path = folder / "dwzoo.int8.tflite"
    export_tflite(model, calibration, folder / "dwzoo.tflite", path, input_range=(0.0, 1.0))
    return path


def kernel_zoo(folder: Path, seed: int, channels: int, size: tuple[int, int]) -> Path:
    torch.manual_seed(seed)
    model = KernelZoo(channels).eval()
    calibration = np.random.default_rng(seed).uniform(-1, 1, (16, 3, *size)).astype(np.float32)
    path = folder / f"zoo{seed}.int8.tflite"
    export_tflite(model, calibration, folder / f"zoo{seed}.tflite", path)
    return path


def reference_interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    return interpreter


def reference_outputs(interpreter, x: np.ndarray, tensors: list[int]) -> list[np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(t) for t in tensors]


def mcu_face(folder: Path) -> Path:
    """The MCU face detector preset, untrained but with varied weights and BN statistics, as int8 .tflite."""
    from edgekd.models.detectors import build_preset

    torch.manual_seed(0)
    model = build_preset("mcu-face")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.running_var, 0.5, 1.5)
            nn.init.normal_(module.running_mean, std=0.1)
    model.eval()
    calibration = np.random.default_rng(0).uniform(0, 1, (8, 1, 96, 96)).astype(np.float32)
    path = folder / "mcu-face.int8.tflite"
    export_tflite(model, calibration, folder / "mcu-face.tflite", path, input_range=(0.0, 1.0))
    return path
