"""Protocol fuzzing on the host build: random bytes, over-long lines, bad CRCs and truncated commands get
error lines, the parser resynchronises at the next '%', and a valid command then works."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgekd.mcu.compiler import compile_model
from edgekd.mcu.protocol import DeviceError, McuClient
from edgekd.mcu.targets import Host
from tests.conftest import require_executable
from tests.mcu_helpers import kernel_zoo


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    require_executable("gcc")
    folder = tmp_path_factory.mktemp("proto")
    compiled = compile_model(kernel_zoo(folder, 4, 4, (8, 8)), folder)
    link, process = Host().start(Host().build(compiled.c_file, folder))
    client = McuClient(link, timeout=5)
    client.sync()
    yield client, compiled.description["input"]["bytes"]
    link.close()
    process.wait(timeout=5)
    assert process.returncode == 0  # no crash after all the fuzzing


def test_random_bytes_then_resync(device):
    client, input_bytes = device
    rng = np.random.default_rng(0)
    for _ in range(30):
        garbage = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        client.link.write(garbage + b"%")
        assert client.sync() == "edgekd-host"  # whatever the garbage caused, the next command is understood
    client.upload(bytes(input_bytes))
    assert len(client.infer(1, 0).laps) == 1


@pytest.mark.parametrize(
    "command,reason",
    [
        ("x" * 5000, "too-long"),
        ("name\x01", "bad-byte"),
        ("db load", "bad-chunk"),
        ("db load 99999", "size-mismatch"),
        ("db 00", "bad-chunk"),
        ("db 00 00000000", "overflow"),  # no `db load` before it
        ("infer 1", "bad-arguments"),
        ("frobnicate", "unknown-command"),
    ],
)
def test_bad_commands_are_answered_with_an_error(device, command, reason):
    client, _ = device
    with pytest.raises(DeviceError, match=reason):
        client.command(command)
    assert client.command("name") == ["m-name-edgekd-host"]


def test_bad_crc_is_refused_and_the_upload_continues(device):
    client, input_bytes = device
    client.command(f"db load {input_bytes}")
    chunk = bytes(range(16))
    with pytest.raises(DeviceError, match="crc"):
        client.command(f"db {chunk.hex()} {zlib.crc32(chunk) ^ 1:08x}")
    assert client.command(f"db {chunk.hex()} {zlib.crc32(chunk):08x}") == ["m-db-16"]
    with pytest.raises(DeviceError, match="no-input"):
        client.command("infer 1 0")  # the upload is incomplete


def test_deploy_esp32_names_what_is_missing(tmp_path, monkeypatch):
    """No ESP-IDF here: the model is still compiled into the project, and the error names idf.py and esptool."""
    import shutil

    from edgekd.mcu import deploy_esp32
    from edgekd.mcu.targets import ToolMissing

    project = tmp_path / "esp32"
    shutil.copytree(Path(__file__).resolve().parents[1] / "firmware" / "ports" / "esp32", project)
    model = kernel_zoo(tmp_path, 7, 4, (8, 8))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing, match="idf.py.*esptool"):
        deploy_esp32(models=[model], port="/dev/ttyUSB0", project=project)
    assert "ekd_model_run" in (project / "main" / "model.c").read_text()
    assert (
        deploy_esp32(model, dry_run=True, project=project)
        == json.loads((project / "main" / "model.json").read_text())["sha256"]
    )
