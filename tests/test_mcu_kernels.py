"""The compiled C (host gcc build) equals LiteRT's reference kernels bit for bit: every layer of random
kernel zoos, and whole MCU models; unsupported ops are refused by name."""

import numpy as np
import pytest
import torch

from edgekd.export.tflite_export import export_tflite
from edgekd.mcu.compiler import compile_model
from edgekd.mcu.lower import UnsupportedModel
from edgekd.mcu.protocol import McuClient
from edgekd.mcu.targets import Host
from edgekd.mcu.tflite_model import read_model
from tests.conftest import require_executable
from tests.mcu_helpers import kernel_zoo, reference_interpreter, reference_outputs

ALL_KINDS = {"conv2d", "depthwise_conv2d", "add", "avg_pool", "max_pool", "lut", "resize_nearest", "concat", "mean"}


def run_on_host(tflite, folder, inputs, expose_all=False):
    """Compiles and builds for the host, runs each input; returns the compiled model and per-input outputs."""
    compiled = compile_model(tflite, folder, expose_all=expose_all)
    binary = Host().build(compiled.c_file, folder)
    link, process = Host().start(binary)
    try:
        client = McuClient(link, timeout=20)
        client.sync()
        outputs = []
        for x in inputs:
            client.upload(x.tobytes())
            client.infer(1, 0)
            outputs.append(client.results())
        return compiled, outputs
    finally:
        link.close()
        process.wait(timeout=10)


@pytest.mark.parametrize("seed,channels,size", [(1, 6, (16, 12)), (2, 9, (10, 14))])
def test_every_layer_of_a_kernel_zoo_is_bit_exact(tmp_path, seed, channels, size):
    require_executable("gcc")
    tflite = kernel_zoo(tmp_path, seed, channels, size)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, (1, *size, 3), dtype=np.int8) for _ in range(4)]
    compiled, outputs = run_on_host(tflite, tmp_path / "c", inputs, expose_all=True)
    assert {layer["kind"] for layer in compiled.description["layers"]} == ALL_KINDS
    tensors = [o["tensor"] for o in compiled.description["outputs"]]
    interpreter = reference_interpreter(tflite)
    for x, got in zip(inputs, outputs, strict=True):
        for name, expected, raw in zip(
            compiled.description["layers"], reference_outputs(interpreter, x, tensors), got, strict=True
        ):
            actual = np.frombuffer(raw, np.int8).reshape(expected.shape)
            assert np.array_equal(actual, expected), f"{name['name']}: {np.count_nonzero(actual != expected)} differ"


def test_whole_mcu_face_detector_is_bit_exact(mcu_face_tflite, tmp_path):
    require_executable("gcc")
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, (1, 96, 96, 1), dtype=np.int8) for _ in range(3)]
    compiled, outputs = run_on_host(mcu_face_tflite, tmp_path, inputs)
    interpreter = reference_interpreter(mcu_face_tflite)
    tensors = [o["tensor"] for o in compiled.description["outputs"]]
    for x, got in zip(inputs, outputs, strict=True):
        (expected,) = reference_outputs(interpreter, x, tensors)
        assert np.array_equal(np.frombuffer(got[0], np.int8).reshape(expected.shape), expected)
    # the static plan beats TFLM's planner on the same graph: PADs fold away and alignment is 4, not 16
    assert compiled.arena_bytes == compiled.description["liveness_peak_bytes"] < 38432


def test_unsupported_op_is_named(tmp_path):
    class Multiply(torch.nn.Module):
        def forward(self, x):
            return x * x

    calibration = np.random.default_rng(0).uniform(-1, 1, (4, 3, 4, 4)).astype(np.float32)
    export_tflite(Multiply(), calibration, tmp_path / "m.tflite", tmp_path / "m.int8.tflite")
    ops = {op.type for op in read_model(tmp_path / "m.int8.tflite").ops}
    with pytest.raises(UnsupportedModel, match=r"op (TRANSPOSE|MUL) \(#\d+\) has no MCU kernel"):
        compile_model(tmp_path / "m.int8.tflite", tmp_path)
    assert "MUL" in ops


@pytest.fixture(scope="module")
def mcu_face_tflite(tmp_path_factory):
    from tests.mcu_helpers import mcu_face

    return mcu_face(tmp_path_factory.mktemp("mcu-face"))


def test_four_instruction_requantization_equals_tflite_arithmetic():
    """The closed form the Cortex-M4 port uses (firmware/ports/qemu-cortex-m4/dsp_common.h), in exact integer
    arithmetic, against TFLite's two roundings step by step: random accumulators plus every exact tie."""

    def tflite(acc, mult, shift, zp):
        product = acc * mult + ((1 << 30) if acc * mult >= 0 else 1 - (1 << 30))
        high = product >> 31 if product >= 0 else -((-product) >> 31)  # C division truncates toward zero
        right = -shift
        mask = (1 << right) - 1
        threshold = (mask >> 1) + (high < 0)
        return min(127, max(-128, (high >> right) + ((high & mask) > threshold) + zp))

    def closed_form(acc, mult, shift, zp):
        right = -shift
        high_word = (1 << (right - 1)) + zp * (1 << right) - (acc < 0)
        return min(127, max(-128, (((high_word << 32) + 2 * acc * mult + (1 << 31)) >> 32) >> right))

    rng = np.random.default_rng(0)
    cases = [
        (int(a), int(m), -int(s), int(z))
        for a, m, s, z in zip(
            rng.integers(-(1 << 29), 1 << 29, 3000),
            rng.integers(1 << 30, 1 << 31, 3000),
            rng.integers(1, 23, 3000),
            rng.integers(-128, 128, 3000),
            strict=True,
        )
    ]
    cases += [(a, m, s, 3) for s in range(-10, 0) for m in (1 << 30, 3 << 29) for a in range(-1200, 1200)]
    assert [closed_form(*c) for c in cases] == [tflite(*c) for c in cases]


def test_per_channel_fully_connected_rounds_once_like_litert(tmp_path):
    """LiteRT's per-channel FULLY_CONNECTED rounds once, (acc * m + 2^(30 - shift)) >> (31 - shift), where every
    other layer rounds twice; the two differ on about 1 output in 1,000. Many random inputs, so that some land on
    the difference (asserted), and every output equals LiteRT's."""
    require_executable("gcc")
    from edgekd.mcu.lower import lower

    torch.manual_seed(3)
    body = [torch.nn.Conv2d(3, 48, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]
    model = torch.nn.Sequential(*body, torch.nn.Linear(48, 16)).eval()  # a DS-CNN's classifier end
    calibration = np.random.default_rng(3).uniform(-1, 1, (32, 3, 4, 4)).astype(np.float32)
    tflite = tmp_path / "fc.int8.tflite"
    export_tflite(model, calibration, tmp_path / "fc.tflite", tflite)
    layer = lower(read_model(tflite)).layers[-1]
    assert layer.params["single_round"] == 1 and len(set(layer.arrays["mult"].tolist())) > 1
    rng = np.random.default_rng(4)
    shape = reference_interpreter(tflite).get_input_details()[0]["shape"]
    inputs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(600)]
    compiled, outputs = run_on_host(tflite, tmp_path / "c", inputs)
    interpreter = reference_interpreter(tflite)
    tensors = [o["tensor"] for o in compiled.description["outputs"]]
    p = layer.params
    weights = layer.arrays["filter"].reshape(p["out_c"], -1).astype(np.int64)
    twice_differs = 0
    for x, got in zip(inputs, outputs, strict=True):
        (expected,) = reference_outputs(interpreter, x, tensors)
        assert np.array_equal(np.frombuffer(got[0], np.int8).reshape(expected.shape), expected)
        features = interpreter.get_tensor(layer.inputs[0]).reshape(-1).astype(np.int64)
        acc = weights @ (features + p["in_offset"]) + layer.arrays["bias"]
        for a, m, s, want in zip(acc, layer.arrays["mult"], layer.arrays["shift"], expected.reshape(-1), strict=True):
            a, m, right = int(a), int(m), -int(s)
            high = (a * m + (1 << 30)) >> 31  # the first of the two roundings (a * m >= 0 or not: floor form)
            twice = (high >> right) + ((high & ((1 << right) - 1)) > (((1 << right) - 1) >> 1) + (high < 0))
            twice_differs += min(127, max(-128, twice + p["out_offset"])) != int(want)
    assert twice_differs > 0


def test_each_layers_scratch_is_free_arena_while_it_runs(mcu_face_tflite):
    """The plan's per-layer scratch (where the Cortex-M4 kernels keep their working rows) lies inside the arena
    and overlaps no tensor that is alive during that layer."""
    from edgekd.export.memory_plan import lifetimes
    from edgekd.mcu.lower import lower
    from edgekd.mcu.plan import plan_memory

    program = lower(read_model(mcu_face_tflite))
    plan = plan_memory(program)
    tensors = program.model.tensors
    steps = [(layer.inputs, [layer.output]) for layer in program.layers]
    used = {t for layer in program.layers for t in (*layer.inputs, layer.output)} | set(program.inputs)
    sizes = {t: tensors[t].nbytes for t in used}
    alive = {b.tensor: b for b in lifetimes(steps, program.inputs, program.outputs, sizes)}
    assert len(plan.scratch) == len(program.layers)
    gaps = []
    for k, (offset, size) in enumerate(plan.scratch):
        assert offset % 4 == 0 and 0 <= offset and offset + size <= plan.arena_bytes
        for t, b in alive.items():
            last = len(steps) if t in program.inputs else b.last
            if b.first <= k + 1 <= last:
                start = plan.offsets[t]
                assert offset + size <= start or start + tensors[t].nbytes <= offset, (k, t)
        gaps.append(size)
    assert max(gaps) > 0 and min(gaps) < max(gaps)  # gaps exist and vary with what is alive


def test_widened_weights_are_in_the_cortex_m4_loop_order_and_replace_the_int8_ones(mcu_face_tflite, tmp_path):
    """A widened conv keeps one copy of its weights per build: int16 in the loop's order where the port defines
    EKD_WIDE_WEIGHTS (pairs of channels interleaved per group of four, lanes (w0 w2) (w1 w3)), int8 elsewhere."""
    from edgekd.mcu.lower import lower, widened_filter

    filt = np.arange(3 * 8, dtype=np.int8).reshape(3, 8)  # three channels, two groups of four
    expected = [0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15, 16, 18, 17, 19, 20, 22, 21, 23]
    assert widened_filter(filt.reshape(-1), 3).tolist() == expected
    program = lower(read_model(mcu_face_tflite))
    widened = [layer for layer in program.layers if "filter16" in layer.arrays]
    assert widened and all(layer.kind == "conv2d" for layer in widened)
    assert all(layer.arrays["filter16"].size == layer.arrays["filter"].size for layer in widened)
    compiled = compile_model(mcu_face_tflite, tmp_path)
    assert compiled.c_file.read_text().count("#ifdef EKD_WIDE_WEIGHTS") == 2 * len(widened)  # arrays, struct field
    assert compiled.description["widened_extra_bytes"] == sum(layer.arrays["filter"].size for layer in widened)
