"""`edgekd deploy` against a real OpenSSH server on loopback (the "Pi"), with the user's ssh client and an ssh
config file as users write them: venv with system site packages, edgekd's wheel installed, bundle verified and
health-checked on the device, the agent started (supervised: systemd is not running here) and reporting over TLS;
a corrupt bundle is refused and the running model stays; a good one is swapped in with `previous` kept."""

import json
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekd.cli import main
from edgekd.deploy.bundle import build_bundle, bundle_id
from edgekd.deploy.targets import build_wheel
from edgekd.fleet.mosquitto import COLLECTOR_USER, Mosquitto
from edgekd.fleet.mqtt import connect, make_client, topic
from tests.conftest import require_executable
from tests.fleet_helpers import SSHServer, export_tiny_classifier, wait_for

pytestmark = pytest.mark.slow
DEVICE = "pi-deploy"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for tool in ("mosquitto", "openssl", "ssh", "ssh-keygen"):
        require_executable(tool)
    work = tmp_path_factory.mktemp("deploy")
    exported = export_tiny_classifier(work)
    users = {COLLECTOR_USER: secrets.token_urlsafe(12), DEVICE: secrets.token_urlsafe(12)}
    broker = Mosquitto(users=users, tls=True).start()
    server = SSHServer(work / "ssh")
    wheel = build_wheel(work / "wheel")
    received = []
    listener = make_client(broker.broker(COLLECTOR_USER), "deploy-test-listener", persistent=False)
    listener.on_message = lambda c, u, m: received.append((m.topic, json.loads(m.payload)))
    connect(
        listener,
        broker.broker(COLLECTOR_USER),
        persistent=False,
        on_connected=lambda c: c.subscribe([(topic(DEVICE, "report"), 1), (topic(DEVICE, "status"), 1)]),
    )
    state = {
        "work": work,
        "exported": exported,
        "users": users,
        "broker": broker,
        "ssh": server,
        "wheel": wheel,
        "received": received,
        "root": work / "device",
    }
    yield state
    subprocess.run([sys.executable, "-m", "device_agents.rpi.service", "stop", str(state["root"])], timeout=30)
    listener.disconnect()
    listener.loop_stop()
    server.close()
    broker.close()


def _broker_args(site) -> list[str]:
    broker = f"mqtts://{DEVICE}@127.0.0.1:{site['broker'].port}"
    return ["--broker", broker, "--ca-file", str(site["broker"].certificates["ca"]), "--device-id", DEVICE]


def _deploy(site, *extra, password: str | None = None):
    args = [
        "deploy",
        "--target",
        "rpi",
        "--host",
        site["ssh"].alias,
        "--ssh-config",
        str(site["ssh"].config),
        "--root",
        str(site["root"]),
        "--python",
        sys.executable,
        "--system-site-packages",
        "--no-deps",
        "--wheel",
        str(site["wheel"]),
        *_broker_args(site),
        *extra,
    ]
    os.environ["EDGEKD_MQTT_PASSWORD"] = password or site["users"][DEVICE]
    try:
        return main(args)
    finally:
        del os.environ["EDGEKD_MQTT_PASSWORD"]


def _reports(site, model: str) -> list[dict]:
    return [r for t, r in list(site["received"]) if t.endswith("/report") and r["model"]["file"] == model]


def _pid(site) -> int:
    return int((site["root"] / "agent.pid").read_text())


def test_deploy_to_a_pi_over_ssh_and_the_agent_reports(site, capsys):
    models = ["--model", str(site["exported"] / "model.onnx"), "--model", str(site["exported"] / "model.int8.tflite")]
    assert _deploy(site, *models, "--interval", "1", "--runs", "5") == 0
    out = capsys.readouterr().out
    assert "systemd is not running here" in out and "supervised background process" in out
    root = site["root"]
    venv_python = root / "venv" / "bin" / "python"
    where = subprocess.run(
        [venv_python, "-c", "import edgekd, device_agents; print(edgekd.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert where.returncode == 0 and str(root / "venv") in where.stdout  # installed from the wheel into the venv
    assert os.readlink(root / "current").startswith("bundles/")
    assert (root / "current" / "edgekd-agent.service").is_file()
    unit = (root / "edgekd-agent.service").read_text()
    assert f"ExecStart={venv_python} -m device_agents.rpi.agent --bundle {root}/current" in unit
    assert stat.S_IMODE((root / "agent.env").stat().st_mode) == 0o600
    assert site["users"][DEVICE] in (root / "agent.env").read_text()  # the one place the password lives
    wait_for(lambda: len(_reports(site, "model.onnx")) >= 2, 90, "reports from the deployed agent")
    report = _reports(site, "model.onnx")[0]
    assert report["device"]["id"] == DEVICE and report["status"] == "ok" and report["latency"]["runs"] == 5
    assert site["users"][DEVICE] not in (root / "agent.log").read_text()
    assert site["users"][DEVICE] not in out


def test_corrupt_bundle_is_refused_and_the_running_model_stays(site, capsys):
    root = site["root"]
    current, pid = os.readlink(root / "current"), _pid(site)
    corrupt = build_bundle([site["exported"] / "model.int8.tflite"], site["work"] / "corrupt", {"interval": 1})
    model = corrupt / "models" / "model.int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in transit or on disk
    model.write_bytes(bytes(data))
    assert _deploy(site, "--bundle", str(corrupt)) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "previous one stays active" in err
    assert os.readlink(root / "current") == current and _pid(site) == pid
    assert not (root / "bundles" / bundle_id(corrupt)).exists()
    count = len(_reports(site, "model.onnx"))
    wait_for(lambda: len(_reports(site, "model.onnx")) > count, 30, "the old model to keep reporting")


def test_an_agent_that_cannot_start_is_rolled_back(site, capsys):
    root = site["root"]
    before = os.readlink(root / "current")
    int8 = ["--model", str(site["exported"] / "model.int8.tflite")]
    assert _deploy(site, *int8, "--interval", "1", password="not-the-password") == 2  # the broker refuses it
    captured = capsys.readouterr()
    assert "did not stay up" in captured.out and "rolled back to the previous bundle" in captured.err
    assert os.readlink(root / "current") == before
    assert "not-the-password" not in captured.out + captured.err + (root / "agent.log").read_text()


def test_a_good_bundle_is_swapped_in_and_previous_kept(site):
    root = site["root"]
    before = os.readlink(root / "current")
    assert _deploy(site, "--model", str(site["exported"] / "model.int8.tflite"), "--interval", "1", "--runs", "5") == 0
    assert os.readlink(root / "previous") == before and os.readlink(root / "current") != before
    wait_for(lambda: _reports(site, "model.int8.tflite"), 60, "reports of the new model")
    statuses = [r for t, r in site["received"] if t.endswith("/status")]
    assert statuses[-1]["model"] == "model.int8.tflite"


def test_local_target_runs_the_same_agent_here(site, tmp_path, capsys):
    # One device id, one MQTT session: stop the "Pi" first, or the two agents would take the session in turns.
    subprocess.run([sys.executable, "-m", "device_agents.rpi.service", "stop", str(site["root"])], timeout=30)
    os.environ["EDGEKD_MQTT_PASSWORD"] = site["users"][DEVICE]
    root = tmp_path / "local-device"
    try:
        args = [
            "deploy",
            "--target",
            "local",
            "--root",
            str(root),
            "--model",
            str(site["exported"] / "model.onnx"),
            *_broker_args(site),
            "--interval",
            "1",
            "--runs",
            "5",
        ]
        count = len(_reports(site, "model.onnx"))
        assert main(args) == 0
        assert "activated" in capsys.readouterr().out
        wait_for(lambda: len(_reports(site, "model.onnx")) > count, 60, "reports from the local agent")
    finally:
        del os.environ["EDGEKD_MQTT_PASSWORD"]
        subprocess.run([sys.executable, "-m", "device_agents.rpi.service", "stop", str(root)], timeout=30)
    time.sleep(0.5)
    assert not Path(f"/proc/{int((root / 'agent.pid').read_text())}").exists()
