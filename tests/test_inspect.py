"""`edgekd inspect`: counts that must equal torch's, a liveness plan checked by hand, the TFLM arena estimate
against the real tflite-micro interpreter, readiness verdicts on hand-made graphs, and the command itself."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.cli import main
from edgekd.export import tflm_measure
from edgekd.export.inspect import inspect_model
from edgekd.export.memory_plan import Buffer, greedy_plan, lifetimes, liveness_peak
from edgekd.export.tflm import TFLM_BUILTIN_OPS, tflm_problems
from edgekd.models import count_macs
from edgekd.models.checkpoint import save_model
from edgekd.models.detectors import Add, Concat, Upsample2x, build_preset
from edgekd.workflows.export import run_export
from tests.conftest import IN_CI

FILES = ("model.onnx", "model.int8.onnx", "model.tflite", "model.int8.tflite")


def require_tflite_micro() -> None:
    if not tflm_measure.available():
        if IN_CI:
            pytest.fail("tflite-micro is not installed, but CI=true: .ci/run must install it")
        pytest.skip("tflite-micro is not installed")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """The MCU face detector (mcu-face preset), exported once in all four formats with manifests.

    Untrained, but with He-initialised convs (outputs that vary with the input, so int8 verification passes)
    and random BN statistics and biases: the converter stores identical constants (e.g. all-zero folded
    biases) once, which would blur the exact parameter counts."""
    torch.manual_seed(0)
    model = build_preset("mcu-face")
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.normal_(module.bias, std=0.1)
        elif isinstance(module, torch.nn.BatchNorm2d):
            for tensor in (module.weight, module.running_var):
                torch.nn.init.uniform_(tensor, 0.5, 1.5)
            for tensor in (module.bias, module.running_mean):
                torch.nn.init.normal_(tensor, std=0.1)
    root = tmp_path_factory.mktemp("inspect")
    meta = {"task": "detect", "classes": ["face"], "input_shape": [1, 96, 96], "layout": "NCHW"}
    meta |= {"stride": 8, "dataset": "faces", "score_threshold": 0.3}
    save_model(root / "model.pt", model, meta)
    run_export(root / "model.pt", root, ["onnx", "onnx-int8", "tflite", "tflite-int8"])
    return model.eval(), root


def test_counts_equal_torch_in_every_format(detector):
    """BN folds into the convs, so every conv ends with a bias of out-channels elements: params are the
    torch conv weights plus one bias per output channel, exactly; int8 files store weights in 1 byte and
    biases in 4; MACs are the convolutions', which is what torch's FLOP counter counts."""
    model, root = detector
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = sum(c.weight.numel() for c in convs)
    biases = sum(c.out_channels for c in convs)
    macs = count_macs(model, (1, 96, 96))
    for name in FILES:
        report = inspect_model(root / name, measure=False)
        assert report["params"] == weights + biases, name
        expected_bytes = weights + 4 * biases if "int8" in name else 4 * (weights + biases)
        assert report["weight_bytes"] == expected_bytes, name
        assert report["macs"] == macs, name
        assert report["precision"] == ("int8" if "int8" in name else "fp32")
        assert report["size_bytes"] == (root / name).stat().st_size


def test_op_histogram_follows_the_torch_modules(detector):
    model, root = detector
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    count = {kind: sum(isinstance(m, kind) for m in model.modules()) for kind in (Upsample2x, Add, Concat)}
    histogram = {row["op"]: row["count"] for row in inspect_model(root / "model.int8.tflite", measure=False)["ops"]}
    assert histogram.pop("CONV_2D") + histogram.pop("DEPTHWISE_CONV_2D") == len(convs)
    # TFLite pads explicitly before each stride-2 conv ("same" padding is asymmetric there).
    assert histogram.pop("PAD") == sum(c.stride == (2, 2) for c in convs)
    assert histogram == {
        "RESIZE_NEAREST_NEIGHBOR": count[Upsample2x],
        "ADD": count[Add],
        "CONCATENATION": count[Concat],
    }
    onnx_ops = {row["op"]: row["count"] for row in inspect_model(root / "model.onnx", measure=False)["ops"]}
    assert onnx_ops["Conv"] == len(convs)


def test_liveness_and_greedy_plan_by_hand():
    """input t0 (100 B) -> op0 -> t1 (200) -> op1 -> t2 (50); op2 adds t1 + t2 -> t3 (200) -> op3 -> t4 (10).
    Alive per step: t0 | t0 t1 | t1 t2 | t1 t2 t3 | t3 t4  ->  100, 300, 250, 450, 210."""
    ops = [([0], [1]), ([1], [2]), ([1, 2], [3]), ([3], [4])]
    buffers = lifetimes(ops, [0], [4], {0: 100, 1: 200, 2: 50, 3: 200, 4: 10})
    assert [(b.first, b.last) for b in buffers] == [(0, 1), (1, 3), (2, 3), (3, 4), (4, 4)]
    assert liveness_peak(buffers) == (450, 3)
    # 16-byte aligned sizes 112, 208, 64, 208, 16, placed largest first (ties: later tensor first):
    # t3 at 0; t1 collides with t3 -> 208; t0 fits under t1 at 0; t2 collides with t3, t1 -> 416; t4 -> 208.
    arena, offsets = greedy_plan(buffers)
    assert offsets == [0, 208, 416, 0, 208] and arena == 480


def test_greedy_plan_can_exceed_the_liveness_peak():
    """TFLM's greedy order is not optimal: D and C (64 B, steps 1 and 3) both take offset 0, B (64 B, steps
    1-2) goes above D at 64, and A (48 B, steps 2-3) finds no gap below 128. Optimal would be 128 B."""
    a, b, c, d = Buffer(48, 2, 3), Buffer(64, 1, 2), Buffer(64, 3, 3), Buffer(64, 1, 1)
    assert liveness_peak([a, b, c, d])[0] == 128
    assert greedy_plan([a, b, c, d]) == (176, [128, 64, 0, 0])


def test_mcu_detector_arena_estimate_within_5_percent_of_tflite_micro(detector):
    require_tflite_micro()
    report = inspect_model(detector[1] / "model.int8.tflite")
    tflm = report["tflm"]
    assert tflm["readiness"] == "ready" and tflm["problems"] == []
    measured, estimate = tflm["measured"], tflm["arena_estimate"]
    assert measured["invoked"] and measured["resolution_bytes"] == 256
    # The replayed greedy plan is TFLM's own, byte for byte; the overhead model carries the error.
    assert measured["reported"]["head"] == estimate["planned_activations"]
    assert abs(estimate["estimate"] - measured["arena_bytes"]) / measured["arena_bytes"] < 0.05
    assert measured["relative_error"] == pytest.approx(
        (estimate["estimate"] - measured["arena_bytes"]) / measured["arena_bytes"], abs=1e-4
    )
    # The bisection is real: 256 B less than the measured arena does not load.
    assert tflm_measure.run_error(detector[1] / "model.int8.tflite", measured["arena_bytes"] - 256) is not None


def _tflite(path: Path, tensors: list, ops: list, inputs: list[int], outputs: list[int]) -> Path:
    """A hand-made .tflite. tensors: (shape, TensorType name, constant bytes or None, (scale, zero point) or
    None); ops: (BuiltinOperator name, input indices, output indices)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray

    model, subgraph = schema.ModelT(), schema.SubGraphT()
    model.version, model.buffers, subgraph.tensors, subgraph.operators = 3, [schema.BufferT()], [], []
    for shape, dtype, data, quantization in tensors:
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer = list(shape), getattr(schema.TensorType, dtype), 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(data, np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        if quantization is not None:
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale, tensor.quantization.zeroPoint = [quantization[0]], [quantization[1]]
        subgraph.tensors.append(tensor)
    codes = []
    for name, op_inputs, op_outputs in ops:
        code = getattr(schema.BuiltinOperator, name)
        codes += [] if code in codes else [code]
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes.index(code), op_inputs, op_outputs
        subgraph.operators.append(op)
    model.operatorCodes = []
    for code in codes:
        opcode = schema.OperatorCodeT()
        opcode.builtinCode, opcode.deprecatedBuiltinCode, opcode.version = code, min(code, 127), 1
        model.operatorCodes.append(opcode)
    subgraph.inputs, subgraph.outputs = inputs, outputs
    model.subgraphs = [subgraph]
    path.write_bytes(convert_object_to_bytearray(model))
    return path


def test_tile_model_is_not_ready(tmp_path):
    """TILE (what Keras UpSampling2D becomes) has no TFLite Micro kernel."""
    q = (0.1, 0)
    multiples = np.array([1, 2, 2, 1], np.int32).tobytes()
    tensors = [((1, 4, 4, 2), "INT8", None, q), ((4,), "INT32", multiples, None), ((1, 8, 8, 2), "INT8", None, q)]
    path = _tflite(tmp_path / "tile.tflite", tensors, [("TILE", [0, 1], [2])], [0], [2])
    report = inspect_model(path)
    assert report["ops"] == [{"op": "TILE", "count": 1, "macs": 0}]
    assert report["precision"] == "int8" and report["params"] == 0  # the multiples are not weights
    assert report["tflm"]["readiness"] == "not ready" and report["tflm"]["unsupported_ops"] == ["TILE"]
    assert any("TILE" in p for p in tflm_problems(path))
    assert report["peak_activations"] == {"bytes": 32 + 128, "step": 1, "op": "#0 TILE"}


def test_op_list_agrees_with_the_interpreter(tmp_path, detector):
    require_tflite_micro()
    q = (0.1, 0)
    multiples = np.array([1, 2, 2, 1], np.int32).tobytes()
    tensors = [((1, 4, 4, 2), "INT8", None, q), ((4,), "INT32", multiples, None), ((1, 8, 8, 2), "INT8", None, q)]
    path = _tflite(tmp_path / "tile.tflite", tensors, [("TILE", [0, 1], [2])], [0], [2])
    assert "TILE" not in TFLM_BUILTIN_OPS
    assert "Didn't find op for builtin opcode 'TILE'" in tflm_measure.run_error(path, 1 << 20)
    assert tflm_measure.run_error(detector[1] / "model.tflite", 1 << 20) is None  # every op it lists, it runs


def test_float_ops_in_an_int8_model_are_reported(tmp_path):
    q = (1 / 128, 0)
    tensors = [((1, 16), "INT8", None, q), ((1, 16), "FLOAT32", None, None), ((1, 16), "FLOAT32", None, None)]
    tensors.append(((1, 16), "INT8", None, q))
    ops = [("DEQUANTIZE", [0], [1]), ("LOGISTIC", [1], [2]), ("QUANTIZE", [2], [3])]
    path = _tflite(tmp_path / "hybrid.tflite", tensors, ops, [0], [3])
    problems = tflm_problems(path, run_interpreter=False)
    assert problems == ["float32 compute in an int8 model: LOGISTIC"]
    assert inspect_model(path, measure=False)["tflm"]["readiness"] == "not ready"


def test_cli_json_round_trip_and_table(detector):
    path = detector[1] / "model.int8.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", "inspect", str(path), "--json", "--no-measure"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(inspect_model(path, measure=False)))
    table = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", "inspect", str(path), "--no-measure"], capture_output=True, text=True
    ).stdout
    for text in ("CONV_2D", "TFLM arena estimate", "TFLM readiness", "ready", "task: detect", "labels: face"):
        assert text in table


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.tflite", None, "no such model file"),
        ("model.pt", b"torch", "unknown model format"),
        ("cut.tflite", "truncated", "corrupt TFLite file"),
        ("noise.tflite", b"\x00" * 64, "not a TFLite flatbuffer"),
        ("noise.onnx", b"not a protobuf at all", "corrupt ONNX file"),
    ],
)
def test_bad_input_exits_2_naming_the_file(detector, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "truncated":
        content = (detector[1] / "model.int8.tflite").read_bytes()[:3000]
    if content is not None:
        path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err.replace("\n", "") and message in err


def test_inspect_does_not_import_torch(detector):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgekd.export.inspect import inspect_model\n"
        f"for name in {FILES!r}:\n"
        f"    inspect_model({str(detector[1])!r} + '/' + name)\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
