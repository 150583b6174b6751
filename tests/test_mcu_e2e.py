"""End to end on the emulated Cortex-M4: build the QEMU firmware, boot it, run bench-mcu over the TCP serial
link; outputs equal LiteRT's reference kernels, instruction counts repeat across boots, and a device that
resets or falls silent mid-benchmark gives a clear error, not a hang."""

import json
import socket
import threading
import time

import numpy as np
import pytest

from edgekd.bench.report import validate_report
from edgekd.mcu.bench_mcu import McuOptions, bench_mcu
from edgekd.mcu.compiler import compile_model
from edgekd.mcu.protocol import DeviceError, McuClient
from edgekd.mcu.targets import CortexM4Qemu
from tests.conftest import require_executable
from tests.mcu_helpers import depthwise_zoo, kernel_zoo, mcu_face, reference_interpreter, reference_outputs


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    require_executable("arm-none-eabi-gcc")
    require_executable("qemu-system-arm")
    return kernel_zoo(tmp_path_factory.mktemp("zoo"), 3, 8, (16, 16))


def test_bench_mcu_on_qemu_is_bit_exact_and_deterministic(zoo, tmp_path):
    reports = [bench_mcu(zoo, options=McuOptions(runs=3, warmup=1, work_dir=tmp_path / f"b{i}")) for i in range(2)]
    for report in reports:
        validate_report(report)
        assert report["device"]["kind"] == "mcu" and report["model"]["format"] == "c"
        mcu = report["mcu"]
        assert mcu["unit"] == "instr" and mcu["sizes"]["flash"] > mcu["weight_bytes"]
        x = np.frombuffer(bytes.fromhex(mcu["input_hex"]), np.int8).reshape(1, 16, 16, 3)
        interpreter = reference_interpreter(zoo)
        (expected,) = reference_outputs(interpreter, x, [interpreter.get_output_details()[0]["index"]])
        assert bytes.fromhex(mcu["outputs_hex"][0]) == expected.astype(np.int8).tobytes()
    # SysTick under -icount shift=0: the same program counts the same instructions, to one 40-instruction tick
    first, second = (np.array(r["mcu"]["laps"]) for r in reports)
    assert np.abs(first - second).max() <= 40 and np.ptp(first) <= 40
    layers = [np.array([layer["instr"] for layer in r["mcu"]["layers"]]) for r in reports]
    assert np.abs(layers[0] - layers[1]).max() <= 40 * 3
    assert all(layer["instr"] > 0 for layer in reports[0]["mcu"]["layers"])


def booted(zoo, folder):
    compiled = compile_model(zoo, folder)
    target = CortexM4Qemu()
    link, process = target.start(target.build(compiled.c_file, folder))
    client = McuClient(link, timeout=5)
    client.sync()
    return compiled, client, link, process


def test_device_reset_mid_benchmark_is_a_clear_error(zoo, tmp_path):
    compiled, client, link, process = booted(zoo, tmp_path)
    try:
        client.upload(bytes(compiled.description["input"]["bytes"]))
        link.write(b"infer 200 0%")
        process.kill()  # the board loses power mid-benchmark
        started = time.monotonic()
        with pytest.raises(DeviceError, match="link failed|closed|silent|reset"):
            client.command("results", timeout=3)
        assert time.monotonic() - started < 10
    finally:
        process.kill()


def test_silent_device_times_out():
    """A port that accepts the connection and never answers (a board without firmware)."""
    import serial

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        link = serial.serial_for_url(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=0.2)
        started = time.monotonic()
        with pytest.raises(DeviceError, match="silent"):
            McuClient(link, timeout=1).sync()
        assert time.monotonic() - started < 3
        link.close()


def layers_match_litert(model, compiled, folder, inputs: int = 2) -> list[str]:
    """Boots the firmware, runs random inputs; returns the layers whose outputs differ from LiteRT's."""
    target = CortexM4Qemu()
    link, process = target.start(target.build(compiled.c_file, folder))
    try:
        client = McuClient(link, timeout=10)
        client.sync()
        interpreter = reference_interpreter(model)
        tensors = [o["tensor"] for o in compiled.description["outputs"]]
        shape = compiled.description["input"]["shape"]
        rng = np.random.default_rng(5)
        differ = []
        for _ in range(inputs):
            x = rng.integers(-128, 128, shape, dtype=np.int8)
            client.upload(x.tobytes())
            client.infer(1, 0)
            got = client.results()
            expected = reference_outputs(interpreter, x, tensors)
            for layer, raw, want in zip(compiled.description["layers"], got, expected, strict=True):
                if raw != want.astype(np.int8).tobytes():
                    differ.append(layer["name"])
        return differ
    finally:
        link.close()
        process.kill()


@pytest.mark.parametrize("narrow", [True, False])
def test_every_layer_is_bit_exact_on_the_cortex_m4(zoo, tmp_path, narrow):
    """The DSP (SMLAD) convolutions of the Cortex-M4 port against LiteRT's reference, layer by layer; with the
    compiler's `narrow` proof (four-instruction requantization, widened weights) and without it (TFLite's steps
    on int8 weights)."""
    compiled = compile_model(zoo, tmp_path, expose_all=True)
    source = compiled.c_file.read_text()
    assert ".narrow = 1" in source and "#ifdef EKD_WIDE_WEIGHTS" in source
    if not narrow:  # the compiler widens only layers with the proof: without it, the int8 weights
        source = source.replace(".narrow = 1", ".narrow = 0").replace("#ifdef EKD_WIDE_WEIGHTS", "#if 0")
        compiled.c_file.write_text(source)
    assert layers_match_litert(zoo, compiled, tmp_path) == []


def test_depthwise_planes_are_bit_exact_on_the_cortex_m4(tmp_path):
    """The plane kernel's cases: broadcast stem, strides 1 and 2 on odd sizes, 6 and 12 channels, no padding; a
    5x5 layer on the four-lane kernel."""
    model = depthwise_zoo(tmp_path)
    compiled = compile_model(model, tmp_path, expose_all=True)
    kinds = [layer["kind"] for layer in compiled.description["layers"]]
    assert kinds.count("depthwise_conv2d") == 7
    assert layers_match_litert(model, compiled, tmp_path) == []


def test_mcu_face_detector_is_bit_exact_layer_by_layer_on_the_cortex_m4(tmp_path):
    """The product's MCU detector on the DSP kernels: planes of 48 down to 3, strides 1 and 2, an odd pixel count,
    a single-channel head and a clamped one."""
    require_executable("arm-none-eabi-gcc")
    require_executable("qemu-system-arm")
    model = mcu_face(tmp_path)
    compiled = compile_model(model, tmp_path, expose_all=True)
    assert layers_match_litert(model, compiled, tmp_path) == []


def test_cli_compile_and_bench_mcu(zoo, tmp_path, capsys):
    from edgekd.cli import main

    assert main(["compile", str(zoo), "--target", "cortex-m4", "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "arena" in printed and "flash" in printed and (tmp_path / "c" / "firmware-cortex-m4.elf").is_file()
    extra = json.loads((tmp_path / "c" / "model.json").read_text())["widened_extra_bytes"]
    assert extra > 0 and f"+ {extra:,} B: conv weights widened to int16" in printed
    assert main(["bench-mcu", "--model", str(zoo), "--runs", "2", "--json-dir", str(tmp_path / "reports")]) == 0
    (path,) = (tmp_path / "reports").glob("*.json")
    report = json.loads(path.read_text())
    validate_report(report)
    assert "instr per inference" in capsys.readouterr().out


def test_babbling_device_is_a_clear_error():
    """A port that streams bytes without ever ending a reply (wrong baud rate, a boot log loop)."""
    import serial

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        link = serial.serial_for_url(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=0.2)
        peer, _ = server.accept()
        stop = threading.Event()

        def babble():
            while not stop.is_set():
                try:
                    peer.sendall(b"\xfe" * 65536)
                except OSError:
                    return

        threading.Thread(target=babble, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(DeviceError, match="babbl|without a line end"):
            McuClient(link, timeout=20).command("name")
        assert time.monotonic() - started < 15
        stop.set()
        link.close()
        peer.close()
