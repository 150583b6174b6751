"""Lowering an int8 TFLite graph to a list of kernel calls with every parameter precomputed: reshapes become
aliases (no copy), a PAD feeding a convolution folds into the convolution's own padding (padding with the zero
point adds exactly zero), fully connected layers become 1x1 convolutions. Anything else is refused by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekd.errors import EdgeKDError
from edgekd.mcu.quantize import activation_range, lookup_table, quantize_multiplier
from edgekd.mcu.tflite_model import QModel, QOp, QTensor

ALIASES = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
ELEMENTWISE = {"LOGISTIC": lambda x: np.float32(1) / (np.float32(1) + np.exp(-x)), "TANH": np.tanh}


class UnsupportedModel(EdgeKDError):
    """The model uses an op or a variant the MCU kernels do not implement."""


@dataclass
class Layer:
    kind: str  # conv2d, depthwise_conv2d, add, avg_pool, max_pool, mean, lut, resize_nearest, concat
    name: str
    inputs: list[int]
    output: int
    params: dict = field(default_factory=dict)  # scalar fields of the kernel's parameter struct
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # constants the struct points to
    macs: int = 0


@dataclass
class Program:
    model: QModel
    layers: list[Layer]
    inputs: list[int]
    outputs: list[int]


def _zp(t: QTensor) -> int:
    return int(t.zero_point[0]) if t.zero_point.size else 0


def _scale(t: QTensor) -> float:
    if not t.scale.size:
        raise UnsupportedModel(f"tensor {t.index} is not quantized; the MCU compiler needs a full-int8 model")
    return float(t.scale[0])


def _act(op: QOp, out: QTensor) -> dict:
    low, high = activation_range(op.options.get("activation"), _scale(out), _zp(out))
    return {"act_min": low, "act_max": high}


def lower(model: QModel) -> Program:
    alias: dict[int, int] = {}

    def real(t: int) -> int:
        while t in alias:
            t = alias[t]
        return t

    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(model.ops):
        for t in op.inputs:
            consumers.setdefault(t, []).append(k)
    folded_pads: dict[int, tuple[int, int, int]] = {}  # padded tensor -> (source tensor, pad top, pad left)
    layers: list[Layer] = []
    for k, op in enumerate(model.ops):
        name = f"{k}_{op.type}"
        if op.type in ALIASES:
            alias[op.outputs[0]] = real(op.inputs[0])
        elif op.type in ("PAD", "PADV2"):
            folded_pads[op.outputs[0]] = _fold_pad(model, op, consumers)
        elif op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            layers.append(_conv(model, op, name, real, folded_pads))
        elif op.type == "ADD":
            layers.append(_add(model, op, name, real))
        elif op.type in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            layers.append(_pool(model, op, name, real))
        elif op.type == "SUM" and _is_identity_sum(model, op):
            alias[op.outputs[0]] = real(op.inputs[0])
        elif op.type == "MEAN":
            layers.append(_mean(model, op, name, real))
        elif op.type in ELEMENTWISE:
            i, o = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
            table = lookup_table(_scale(i), _zp(i), _scale(o), _zp(o), ELEMENTWISE[op.type])
            layers.append(Layer("lut", name, [real(i.index)], o.index, {"size": o.nbytes}, {"lut": table}))
        elif op.type == "RESIZE_NEAREST_NEIGHBOR":
            layers.append(_resize(model, op, name, real))
        elif op.type == "CONCATENATION":
            layers.append(_concat(model, op, name, real))
        else:
            raise UnsupportedModel(f"op {op.type} (#{k}) has no MCU kernel")
    for t in model.tensors:
        if t.data is None and t.dtype is not np.int8 and any(t.index in (*op.inputs, *op.outputs) for op in model.ops):
            if t.index not in alias:
                raise UnsupportedModel(f"tensor {t.index} is {np.dtype(t.dtype).name}; only int8 activations run")
    return Program(model, layers, [real(t) for t in model.inputs], [real(t) for t in model.outputs])


def _fold_pad(model: QModel, op: QOp, consumers: dict) -> tuple[int, int, int]:
    pads = model.tensors[op.inputs[1]].data
    users = consumers.get(op.outputs[0], [])
    folds = len(users) == 1 and model.ops[users[0]].type in ("CONV_2D", "DEPTHWISE_CONV_2D")
    if op.type == "PADV2" and len(op.inputs) > 2:
        value = model.tensors[op.inputs[2]].data
        folds = folds and value is not None and int(value.reshape(-1)[0]) == _zp(model.tensors[op.outputs[0]])
    if not folds or pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        raise UnsupportedModel("a PAD that does not feed a convolution (spatial padding only) has no MCU kernel")
    if model.ops[users[0]].options.get("Padding") != 1:  # VALID: the explicit pad is all the padding
        raise UnsupportedModel("a PAD feeding a SAME-padded convolution is not supported")
    return op.inputs[0], int(pads[1][0]), int(pads[2][0])


def _same_padding(size: int, out: int, stride: int, kernel: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + effective - size, 0) // 2


def _conv(model: QModel, op: QOp, name: str, real, folded_pads: dict) -> Layer:
    source, w, bias = (model.tensors[i] if i >= 0 else None for i in (*op.inputs, -1)[:3])
    out = model.tensors[op.outputs[0]]
    o = op.options
    pad_top = pad_left = 0
    if source.index in folded_pads:
        origin, pad_top, pad_left = folded_pads[source.index]
        source = model.tensors[origin]
    in_scale, out_scale = _scale(source), _scale(out)
    kind = "depthwise_conv2d" if op.type == "DEPTHWISE_CONV_2D" else "conv2d"
    if op.type == "FULLY_CONNECTED":
        features = w.shape[1]
        rows = source.nbytes // features
        dims = {"in_h": rows, "in_w": 1, "in_c": features, "out_h": rows, "out_w": 1, "out_c": w.shape[0]}
        dims |= {"k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "dil_h": 1, "dil_w": 1, "depth_mult": 1}
        filt = w.data.reshape(w.shape[0], 1, 1, features)
    else:
        _, in_h, in_w, in_c = source.shape
        _, out_h, out_w, out_c = out.shape
        k_h, k_w = w.shape[1:3]
        dims = {"in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w, "out_c": out_c}
        dims |= {"k_h": k_h, "k_w": k_w, "stride_h": o["StrideH"], "stride_w": o["StrideW"]}
        dims |= {"dil_h": o["DilationHFactor"], "dil_w": o["DilationWFactor"]}
        # from the shapes: converted files do not always fill the DepthMultiplier option correctly
        dims["depth_mult"] = out_c // in_c if kind == "depthwise_conv2d" else 1
        if o["Padding"] == 0:  # SAME
            pad_top = _same_padding(in_h, out_h, o["StrideH"], k_h, o["DilationHFactor"])
            pad_left = _same_padding(in_w, out_w, o["StrideW"], k_w, o["DilationWFactor"])
        filt = w.data
    channels = dims["out_c"]
    scales = np.broadcast_to(w.scale, (channels,)) if w.scale.size in (1, channels) else None
    if scales is None or (w.zero_point.size and w.zero_point.any()):
        raise UnsupportedModel(f"{name}: weights must be symmetric int8, per tensor or per output channel")
    pairs = []
    for c in range(channels):
        if op.type == "FULLY_CONNECTED" and w.scale.size == 1:  # TFLite multiplies the float scales first
            real_scale = float(np.float32(in_scale) * np.float32(scales[c])) / float(out_scale)
        else:
            real_scale = float(in_scale) * float(scales[c]) / float(out_scale)
        pairs.append(quantize_multiplier(real_scale))
    arrays = {
        "filter": np.ascontiguousarray(filt, np.int8).reshape(-1),
        "mult": np.array([m for m, _ in pairs], np.int32),
        "shift": np.array([s for _, s in pairs], np.int8),
    }
    if bias is not None and bias.data is not None:
        arrays["bias"] = bias.data.astype(np.int32).reshape(-1)
    params = dims | {"pad_top": pad_top, "pad_left": pad_left, "in_offset": -_zp(source), "out_offset": _zp(out)}
    params |= _act(op, out) | {"narrow": int(_narrow(arrays, channels, kind == "depthwise_conv2d"))}
    # LiteRT's per-channel FULLY_CONNECTED rounds once; measured against it (tests/test_mcu_kernels.py)
    params["single_round"] = int(op.type == "FULLY_CONNECTED" and w.scale.size > 1)
    per_output = dims["k_h"] * dims["k_w"] * (dims["in_c"] if kind == "conv2d" else 1)
    macs = dims["out_h"] * dims["out_w"] * channels * per_output
    if kind == "conv2d" and _requantizes_in_loop(params, arrays):
        arrays["filter16"] = widened_filter(arrays["filter"], channels)
    return Layer(kind, name, [real(source.index)], out.index, params, arrays, macs)


# The Cortex-M4 port's limits (kernels_dsp.c, dsp_common.h): receptive field and channels its buffers hold, the
# right shifts the closed-form requantization covers.
PORT_MAX_COLUMN, PORT_MAX_CHANNELS, FAST_RQ_RIGHT = 2048, 512, range(1, 23)


def _requantizes_in_loop(params: dict, arrays: dict) -> bool:
    """Whether a port that multiplies 16-bit pairs runs this conv with the requantization inside its MAC loop
    (dot_2x2.S): whole groups of four inputs, the full int8 range, the `narrow` proof and the closed form's
    shifts. Such a port reads `filter16` only, so the rule here is the port's rule."""
    depth = arrays["filter"].size // len(arrays["mult"])
    full_range = params["act_min"] == -128 and params["act_max"] == 127
    shifts_fit = all(-int(s) in FAST_RQ_RIGHT for s in arrays["shift"])
    fits = depth <= PORT_MAX_COLUMN and len(arrays["mult"]) <= PORT_MAX_CHANNELS
    return depth % 4 == 0 and fits and full_range and params["narrow"] and not params["single_round"] and shifts_fit


def widened_filter(filt: np.ndarray, channels: int) -> np.ndarray:
    """int16 weights in the order the Cortex-M4 MAC loop reads them: per pair of output channels, per group of
    four inputs, channel a's (w0 w2) (w1 w3) then channel b's (the lanes SXTAB16 gives the gathered inputs); an
    odd last channel's groups follow on their own. Twice the flash of int8, no unpacking in the loop."""
    groups = filt.reshape(channels, -1, 4)[:, :, [0, 2, 1, 3]].astype(np.int16)
    pairs = channels // 2
    interleaved = np.stack([groups[0 : 2 * pairs : 2], groups[1 : 2 * pairs : 2]], axis=2)  # [pair][group][2][4]
    return np.concatenate([interleaved.reshape(-1), groups[2 * pairs :].reshape(-1)])


def _narrow(arrays: dict, channels: int, depthwise: bool) -> bool:
    """Whether |accumulator| << left stays below 2^30 for every input: |x + offset| <= 255 bounds each product."""
    magnitudes = np.abs(arrays["filter"].astype(np.int64))
    # conv filters are [channel][...], depthwise ones [kh][kw][channel]
    weights = magnitudes.reshape(-1, channels).sum(axis=0) if depthwise else magnitudes.reshape(channels, -1).sum(1)
    bias = np.abs(arrays["bias"].astype(np.int64)) if "bias" in arrays else 0
    left = np.maximum(arrays["shift"].astype(np.int64), 0)
    return bool(np.all((weights * 255 + bias) << left < (1 << 30)))


def _add(model: QModel, op: QOp, name: str, real) -> Layer:
    a, b = (model.tensors[i] for i in op.inputs)
    out = model.tensors[op.outputs[0]]
    if a.shape != b.shape:
        raise UnsupportedModel(f"{name}: broadcasting ADD is not supported ({a.shape} + {b.shape})")
    twice_max = 2 * max(float(a.scale[0]), float(b.scale[0]))
    m1, s1 = quantize_multiplier(float(a.scale[0]) / twice_max)
    m2, s2 = quantize_multiplier(float(b.scale[0]) / twice_max)
    mo, so = quantize_multiplier(twice_max / float(np.float32((1 << 20) * out.scale[0])))
    params = {"size": out.nbytes, "in1_offset": -_zp(a), "in2_offset": -_zp(b), "out_offset": _zp(out)}
    params |= {"in1_mult": m1, "in2_mult": m2, "out_mult": mo, "in1_shift": s1, "in2_shift": s2, "out_shift": so}
    return Layer("add", name, [real(a.index), real(b.index)], out.index, params | _act(op, out))


def _pool(model: QModel, op: QOp, name: str, real) -> Layer:
    source, out, o = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]], op.options
    _, in_h, in_w, c = source.shape
    _, out_h, out_w, _ = out.shape
    k_h, k_w = o["FilterHeight"], o["FilterWidth"]
    same = o["Padding"] == 0
    params = {"in_h": in_h, "in_w": in_w, "c": c, "out_h": out_h, "out_w": out_w, "k_h": k_h, "k_w": k_w}
    params |= {"stride_h": o["StrideH"], "stride_w": o["StrideW"]}
    params |= {"pad_top": _same_padding(in_h, out_h, o["StrideH"], k_h, 1) if same else 0}
    params |= {"pad_left": _same_padding(in_w, out_w, o["StrideW"], k_w, 1) if same else 0}
    kind = "avg_pool" if op.type == "AVERAGE_POOL_2D" else "max_pool"
    return Layer(kind, name, [real(source.index)], out.index, params | _act(op, out))


def _is_identity_sum(model: QModel, op: QOp) -> bool:
    """A SUM over 1x1 (global pooling after the spatial size reached 1) without requantization copies."""
    source, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    same = _scale(source) == _scale(out) and _zp(source) == _zp(out)
    return same and source.nbytes == out.nbytes


def _mean(model: QModel, op: QOp, name: str, real) -> Layer:
    """MEAN over leading axes (global average pooling): TFLite's integer mean, 1/count folded into the
    multiplier with as many extra bits as the count has."""
    source, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    axes = sorted(int(a) % len(source.shape) for a in model.tensors[op.inputs[1]].data.reshape(-1))
    kept = [d for d in range(len(source.shape)) if d not in axes and source.shape[d] > 1]
    if any(d < max(axes) for d in kept):
        raise UnsupportedModel(f"{name}: only a MEAN over leading axes (global pooling) runs")
    inner = int(np.prod([source.shape[d] for d in kept], dtype=np.int64))
    outer = source.nbytes // inner
    mult, shift = quantize_multiplier(_scale(source) / _scale(out))
    extra = min(outer.bit_length() - 1, 32, 31 + shift)
    params = {"outer": outer, "inner": inner, "in_offset": -_zp(source), "out_offset": _zp(out)}
    params |= {"mult": (mult << extra) // outer, "shift": shift - extra}
    return Layer("mean", name, [real(source.index)], out.index, params)


def _nearest(out_size: int, in_size: int, align: bool, half: bool) -> np.ndarray:
    scale = np.float32((in_size - 1) / (out_size - 1)) if align and out_size > 1 else np.float32(in_size / out_size)
    offset = np.float32(0.5) if half else np.float32(0)
    x = (np.arange(out_size, dtype=np.float32) + offset) * scale
    index = np.sign(x) * np.floor(np.abs(x) + np.float32(0.5)) if align else np.floor(x)
    return np.clip(index, 0, in_size - 1).astype(np.uint16)


def _resize(model: QModel, op: QOp, name: str, real) -> Layer:
    source, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if _scale(source) != _scale(out) or _zp(source) != _zp(out):
        raise UnsupportedModel(f"{name}: a resize that requantizes is not supported")
    _, in_h, in_w, c = source.shape
    _, out_h, out_w, _ = out.shape
    align, half = bool(op.options["AlignCorners"]), bool(op.options["HalfPixelCenters"])
    arrays = {"src_y": _nearest(out_h, in_h, align, half), "src_x": _nearest(out_w, in_w, align, half)}
    params = {"out_h": out_h, "out_w": out_w, "in_w": in_w, "c": c}
    return Layer("resize_nearest", name, [real(source.index)], out.index, params, arrays)


def _concat(model: QModel, op: QOp, name: str, real) -> Layer:
    out = model.tensors[op.outputs[0]]
    axis = op.options["Axis"] % len(out.shape)
    parts = [model.tensors[i] for i in op.inputs]
    if any(_scale(p) != _scale(out) or _zp(p) != _zp(out) for p in parts) or op.options.get("activation"):
        raise UnsupportedModel(f"{name}: int8 CONCATENATION needs equal input and output quantization")
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inners = [int(np.prod(p.shape[axis:], dtype=np.int64)) for p in parts]
    params = {"outer": outer, "inners": inners, "stride": int(np.prod(out.shape[axis:], dtype=np.int64))}
    return Layer("concat", name, [real(p.index) for p in parts], out.index, params)
