"""Fleet pieces at their unit boundaries: broker URLs and redaction, command parsing, the collector's message
triage, the report store (SQLite and the session's PostgreSQL), bundles and their sha256 checks, the spool sender
against a stand-in client, the embedded broker, deploy's dry run and the esp32 dispatch."""

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from device_agents.rpi.commands import CommandError, parse_command
from edgekd.bench.report import failed_report
from edgekd.cli import main
from edgekd.config import FleetConfig
from edgekd.deploy.bundle import BundleError, build_bundle, verify_bundle
from edgekd.errors import ConfigError, EdgeKDError
from edgekd.fleet.broker import parse_broker
from edgekd.fleet.collector import classify
from edgekd.fleet.mqtt import parse_topic, topic
from edgekd.fleet.spool import Spool, SpoolSender
from edgekd.fleet.store import open_store
from edgekd.runtime.manifest import write_manifest
from tests.test_report import good_report

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def test_broker_url_parsing_and_redaction(monkeypatch):
    monkeypatch.delenv("EDGEKD_MQTT_PASSWORD", raising=False)
    broker = parse_broker("mqtts://pi-1:s%40cret@broker.lan")
    assert (broker.host, broker.port, broker.tls, broker.username, broker.password) == (
        "broker.lan",
        8883,
        True,
        "pi-1",
        "s@cret",
    )
    for shown in (broker.redacted(), repr(broker), str(broker), f"{broker}"):
        assert "s@cret" not in shown and "cret" not in shown
    assert broker.redacted() == "mqtts://pi-1:***@broker.lan:8883"
    assert parse_broker("mqtt://h:1884").port == 1884 and not parse_broker("h").tls
    monkeypatch.setenv("EDGEKD_MQTT_PASSWORD", "from-env")
    assert parse_broker("mqtt://pi-2@h").password == "from-env"
    assert parse_broker("mqtt://h").password is None  # no user, no password
    for bad, message in [("http://h", "scheme"), ("mqtt://h:99999", "port"), ("mqtt://", "host")]:
        with pytest.raises(ConfigError, match=message):
            parse_broker(bad)
    with pytest.raises(ConfigError, match="CA file not found"):
        parse_broker("mqtts://h", ca_file="/nonexistent/ca.crt")


def test_topics_round_trip_and_foreign_topics_are_none():
    assert parse_topic(topic("pi-3", "cmd/ack")) == ("pi-3", "cmd/ack")
    assert parse_topic("edgekd/pi-3/report") == ("pi-3", "report")
    assert parse_topic("other/pi-3/report") is None and parse_topic("edgekd/pi-3/secret") is None


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"x" * 20_000, "oversized"),
        (b"\xff\xfe{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"command": "bench"}', "field id"),
        (b'{"id": "1", "command": "format-disk"}', "unknown 'format-disk'"),
        (b'{"id": "1", "command": "bench", "runs": "many"}', "field runs: wrong type"),
        (b'{"id": "1", "command": "bench", "runs": 0}', "between 1 and"),
        (b'{"id": "1", "command": "stop", "now": true}', "field now: not a parameter"),
    ],
)
def test_bad_commands_are_refused_with_the_reason(raw, message):
    with pytest.raises(CommandError, match=message):
        parse_command(raw)


def test_good_command_parses():
    command = parse_command(b'{"id": "a1", "command": "bench", "runs": 20, "seconds": 0.5}')
    assert command == {"id": "a1", "command": "bench", "runs": 20, "seconds": 0.5}


def test_collector_triage_names_the_reason():
    report = good_report()
    raw = json.dumps(report).encode()
    assert classify(raw, "pi-kitchen", 65536) == (report, None)
    assert classify(raw, "pi-other", 65536)[1] == "wrong_device"  # the payload must agree with the topic
    assert classify(raw, "pi-kitchen", 100)[1] == "oversized"
    assert classify(b"{not json", "pi-kitchen", 65536)[1] == "malformed"
    assert classify(b"42", "pi-kitchen", 65536)[1] == "malformed"
    assert classify(json.dumps({**report, "schema": "edgekd-report/9"}).encode(), "pi-kitchen", 65536)[1] == (
        "unknown_version"
    )
    del report["latency"]
    assert classify(json.dumps(report).encode(), "pi-kitchen", 65536)[1] == "invalid"


def _error_report(device: str, model: str = "m.onnx") -> dict:
    return failed_report(
        model={"file": model},
        error="did not load",
        started_at="2026-11-28T10:00:00Z",
        finished_at="2026-11-28T10:00:01Z",
        device_id=device,
        device_kind="rpi",
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_is_idempotent_by_report_id(backend, tmp_path):
    if backend == "postgresql":
        pytest.importorskip("psycopg")
        schema = f"edgekd_test_{uuid.uuid4().hex[:8]}"
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        where = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    else:
        where = tmp_path / "fleet.db"
    store = open_store(where)
    try:
        reports = [good_report(), _error_report("pi-2"), _error_report("pi-2", "other.tflite")]
        assert store.add_reports(reports) == 3
        assert store.add_reports(reports[:2]) == 0  # delivered again: stored once
        assert store.count() == 3
        store.set_status("pi-2", {"state": "online", "model": "other.tflite"})
        devices = {d["device_id"]: d for d in store.devices()}
        assert devices["pi-2"]["state"] == "online" and devices["pi-2"]["reports"] == 2
        assert devices["pi-kitchen"]["reports"] == 1
        rows = store.reports(device="pi-2", model="other.tflite")
        assert [r["report"]["report_id"] for r in rows] == [reports[2]["report_id"]]
        assert store.reports(device="pi-kitchen")[0]["p50_ms"] == reports[0]["latency"]["p50_ms"]
    finally:
        store.close()
        if backend == "postgresql":
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_fleet_cli_on_a_store(tmp_path, capsys):
    db = tmp_path / "fleet.db"
    store = open_store(db)
    store.add_reports([good_report(), _error_report("pi-2")])
    store.set_status("pi-2", {"state": "offline", "model": "m.onnx"})
    store.close()
    assert main(["fleet", "status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "pi-kitchen" in out and "offline" in out
    csv_path, json_path, png = tmp_path / "r.csv", tmp_path / "r.json", tmp_path / "lat.png"
    args = ["fleet", "reports", "--db", str(db), "--csv", str(csv_path), "--json", str(json_path), "--plot", str(png)]
    assert main(args) == 0
    assert "edgekd fleet reports: 2" in capsys.readouterr().out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("report_id,device_id") and len(lines) == 3
    assert {r["device"]["id"] for r in json.loads(json_path.read_text())} == {"pi-kitchen", "pi-2"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert main(["fleet", "reports", "--db", str(db), "--device", "pi-2", "--json", "-"]) == 0
    assert [r["device"]["id"] for r in json.loads(capsys.readouterr().out)] == ["pi-2"]


def _fake_model(folder: Path, name: str = "model.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    tensor = {"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32", "layout": "NCHW", "quantization": None}
    pre = {"resize": "stretch", "color": "gray", "scale": 1 / 255, "mean": [0.0], "std": [1.0]}
    write_manifest(
        path,
        {
            "format": "onnx",
            "precision": "fp32",
            "task": "classify",
            "input": {**tensor, "preprocessing": pre},
            "outputs": [tensor],
        },
    )
    return path


def test_bundle_verification_refuses_corrupt_files(tmp_path):
    bundle = build_bundle([_fake_model(tmp_path / "x")], tmp_path / "bundle", {"interval": 5})
    described = verify_bundle(bundle)
    assert described["model"] == "model.onnx" and described["agent"] == {"interval": 5}
    assert "edgekd-agent.service" in described["files"]  # the unit ships in every bundle
    model = bundle / "models" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="models/model.onnx: sha256 mismatch"):
        verify_bundle(bundle)
    # Even with bundle.json rewritten to match, the model's own manifest still refuses it.
    from edgekd.runtime.manifest import sha256_file

    described["files"]["models/model.onnx"] = sha256_file(model)
    (bundle / "bundle.json").write_text(json.dumps(described))
    with pytest.raises(BundleError, match="sha256 differs from its manifest"):
        verify_bundle(bundle)
    with pytest.raises(BundleError, match="not a bundle"):
        verify_bundle(tmp_path)


class _StandInClient:
    """paho's publish() as far as the sender sees it: a mid per call, PUBACKs delivered by the test."""

    def __init__(self):
        self.published = []

    def publish(self, topic, payload, qos):
        self.published.append(payload)

        class Info:
            mid = len(self.published)

        return Info()


class _Code:
    def __init__(self, value):
        self.value = value


def test_spool_files_go_only_on_puback_and_refusals_are_kept(tmp_path):
    spool = Spool(tmp_path / "spool")
    reports = [_error_report("pi-1") for _ in range(3)]
    for report in reports:
        spool.put(report)
    client = _StandInClient()
    sender = SpoolSender(spool, client, "edgekd/pi-1/report")
    assert sender.pump() == 3 and len(client.published) == 3
    assert sender.pump() == 3 and len(client.published) == 3  # in flight: not published twice
    sender.on_publish(None, None, 1, _Code(0), None)
    sender.on_publish(None, None, 2, _Code(135), None)  # not authorized: kept aside, not retried
    assert sender.pump() == 1
    assert [json.loads(p)["report_id"] for p in client.published] == [r["report_id"] for r in reports]
    assert len(list((tmp_path / "spool" / "rejected").iterdir())) == 1
    sender.on_publish(None, None, 3, _Code(0), None)
    assert sender.drain(timeout=2) and sender.sent == 2 and sender.refused == 1


def test_embedded_broker_carries_reports_to_the_collector(tmp_path, monkeypatch):
    """No broker configured and none answering: `edgekd collect` starts amqtt and stores what devices send."""
    pytest.importorskip("amqtt")
    import threading
    import time

    from edgekd.fleet import commands
    from edgekd.fleet.broker import Broker
    from edgekd.fleet.mosquitto import free_port
    from edgekd.fleet.mqtt import connect, make_client

    port = free_port()
    monkeypatch.delenv("EDGEKD_BROKER", raising=False)
    monkeypatch.setattr(commands, "DEFAULTS", FleetConfig(broker=f"mqtt://127.0.0.1:{port}"))
    report = _error_report("laptop-cam")

    def device():
        broker = Broker("127.0.0.1", port, mqtt5=False)
        for _ in range(100):  # until the embedded broker and the collector's subscription are up
            time.sleep(0.2)
            try:
                client = make_client(broker, "laptop-cam", persistent=False)
                connect(client, broker, persistent=False)
                break
            except EdgeKDError:
                continue
        time.sleep(1.0)
        client.publish(topic("laptop-cam", "report"), json.dumps(report), qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()

    sender = threading.Thread(target=device, daemon=True)
    sender.start()
    db = tmp_path / "fleet.db"
    assert main(["collect", "--db", str(db), "--count", "1", "--stats", str(tmp_path / "s.json")]) == 0
    sender.join(10)
    assert [r["report_id"] for r in map(lambda row: row["report"], open_store(db).reports())] == [report["report_id"]]


def test_deploy_dry_run_prints_every_step_and_hides_the_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEKD_MQTT_PASSWORD", "hunter2-secret")
    model = _fake_model(tmp_path / "x")
    args = [
        "deploy",
        "--target",
        "rpi",
        "--host",
        "pi@raspberrypi.local",
        "--model",
        str(model),
        "--dry-run",
        "--broker",
        "mqtts://pi-1@broker.lan",
        "--system-site-packages",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for step in (
        "copy",
        "create the venv",
        "--system-site-packages",
        "install edgekd",
        "verify sha256",
        "agent environment",
        "(re)start the agent",
        "still up",
    ):
        assert step in out, step
    assert "hunter2-secret" not in out and "mqtts://pi-1:***@broker.lan:8883" in out


def test_deploy_esp32_without_mcu_support_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "edgekd.mcu", None)  # as in an install without the microcontroller part
    assert main(["deploy", "--target", "esp32", "--model", str(_fake_model(tmp_path)), "--host", "/dev/ttyUSB0"]) == 2
    assert "edgekd.mcu.deploy_esp32" in capsys.readouterr().err


def test_deploy_refuses_bad_input_naming_it(tmp_path, capsys):
    assert main(["deploy", "--target", "rpi", "--model", str(_fake_model(tmp_path)), "--dry-run"]) == 2
    assert "needs --host" in capsys.readouterr().err
    assert main(["deploy", "--target", "local", "--model", str(tmp_path / "missing.onnx"), "--dry-run"]) == 2
    assert "missing.onnx: no such model file" in capsys.readouterr().err
    ssh = ["--ssh-config", str(tmp_path / "nope")]
    assert main(["deploy", "--target", "rpi", "--host", "h", "--model", str(_fake_model(tmp_path)), *ssh]) == 2
    assert "ssh config file not found" in capsys.readouterr().err


def test_fleet_deploy_and_agent_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import edgekd.fleet.collector, edgekd.fleet.commands, edgekd.fleet.store, edgekd.fleet.spool\n"
        "import edgekd.fleet.embedded, edgekd.fleet.mosquitto, edgekd.fleet.plots\n"
        "import edgekd.deploy.targets, device_agents.rpi.agent, device_agents.rpi.service\n"
        "import device_agents.rpi.supervise\n"
        "from edgekd.cli import build_parser\n"
        "for command in ('collect', 'fleet', 'deploy'):\n"
        "    build_parser(command)\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])\n"
        "assert 'picamera2' not in sys.modules  # the agent's sources import it for a picam source only\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shipped_acl_and_config_are_the_tested_ones():
    from edgekd.fleet.mosquitto import ACL

    def rules(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    docs = Path(__file__).resolve().parents[1] / "docs" / "mosquitto"
    assert rules((docs / "acl.example").read_text()) == rules(ACL)
    config = (docs / "edgekd.conf").read_text()
    for setting in ("allow_anonymous false", "persistence true", "max_queued_messages 1000000", "acl_file"):
        assert setting in config


def test_store_and_source_errors_name_the_file(tmp_path, capsys):
    missing = tmp_path / "none.db"
    assert main(["fleet", "status", "--db", str(missing)]) == 2
    assert f"{missing}: no report store here" in capsys.readouterr().err and not missing.exists()
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(ConfigError, match="dir.db: cannot open it as the SQLite store"):
        open_store(tmp_path / "dir.db")
    from device_agents.rpi.sources import FrameSource

    with pytest.raises(ConfigError, match="nothing.avi: no such video file or folder .--source takes a camera"):
        FrameSource(str(tmp_path / "nothing.avi"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        FrameSource(str(tmp_path / "empty"))


def test_video_source_gives_rgb_frames_and_loops(tmp_path):
    import cv2

    from device_agents.rpi.sources import FrameSource

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for _ in range(3):
        writer.write(np.dstack([np.full((32, 48), 200, np.uint8), np.zeros((32, 48, 2), np.uint8)]))  # blue in BGR
    writer.release()
    source = FrameSource(str(path))
    frames = [source.read() for _ in range(7)]  # more frames than the file has: it loops
    assert all(f.shape == (32, 48, 3) for f in frames)
    assert frames[-1][..., 2].mean() > 150 and frames[-1][..., 0].mean() < 50  # BGR blue -> RGB channel 2
    assert source.describe() == {"kind": "video", "name": "clip.avi"}
    source.close()


def test_collect_with_an_unreachable_or_bad_broker_is_a_clear_error(tmp_path, capsys):
    from edgekd.fleet.mosquitto import free_port

    db = str(tmp_path / "fleet.db")
    assert main(["collect", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--db", db]) == 2
    assert "cannot reach the broker at mqtt://127.0.0.1:" in capsys.readouterr().err
    assert main(["collect", "--broker", "http://broker.lan", "--db", db]) == 2
    assert "scheme must be mqtt:// or mqtts://" in capsys.readouterr().err


def test_the_systemd_unit_is_rendered_for_the_device(tmp_path, monkeypatch):
    import sys

    from device_agents.rpi import service

    unit = service._unit(tmp_path)
    assert "@" not in unit.replace("%", "")  # every placeholder filled
    assert f"ExecStart={sys.executable} -m device_agents.rpi.agent --bundle {tmp_path}/current" in unit
    assert f"EnvironmentFile={tmp_path}/agent.env" in unit and "Restart=on-failure" in unit
    monkeypatch.setattr(service, "Path", lambda p: tmp_path / "no-systemd-here")
    assert service.systemd_running() is False  # systemctl may exist; without /run/systemd/system it is not PID 1


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    """systemd's own parser on the rendered unit: a misspelt directive or value is a warning on stderr, a missing
    executable an error; both fail here."""
    import subprocess

    from device_agents.rpi import service
    from tests.conftest import require_executable

    analyze = require_executable("systemd-analyze")
    (tmp_path / "agent.env").write_text("EDGEKD_BROKER=mqtt://127.0.0.1:1883\n")
    unit = tmp_path / service.UNIT_FILE
    unit.write_text(service._unit(tmp_path))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and unit.name not in result.stderr, result.stderr
    broken = tmp_path / "broken" / service.UNIT_FILE
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    result = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "Restart" in result.stderr or "restart" in result.stderr  # the check can fail
