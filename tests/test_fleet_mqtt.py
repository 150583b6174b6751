"""The fleet over a real mosquitto (TLS from a generated CA, password file, per-device ACL, persistence), with the
Pi agent and the collector as real processes: reports arrive once each through a broker restart and an agent
killed mid-run; junk on report and command topics is counted and survived; wrong passwords and ACL violations
are refused; commands are obeyed and acknowledged; no password appears in any log, report or store row."""

import json
import secrets
import signal
import sqlite3
import time

import cv2
import numpy as np
import pytest

from edgekd.cli import main
from edgekd.deploy.bundle import build_bundle
from edgekd.fleet.mosquitto import COLLECTOR_USER, Mosquitto
from edgekd.fleet.mqtt import BrokerError, connect, make_client, topic
from tests.conftest import require_executable
from tests.fleet_helpers import (
    export_tiny_classifier,
    logged_report_ids,
    read_stats,
    spawn,
    start_agent,
    start_collector,
    stop,
    wait_for,
)
from tests.test_report import good_report

pytestmark = pytest.mark.slow  # real broker and processes: ~35 s for the module
DEVICES = ["pi-1", "pi-2", "pi-3", "pi-4", "pi-5"]
FAST = ["--runs", "5", "--warmup", "1", "--frames", "3", "--heartbeat", "1"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    require_executable("mosquitto")
    require_executable("openssl")
    work = tmp_path_factory.mktemp("fleet")
    exported = export_tiny_classifier(work)
    bundle = build_bundle([exported / "model.onnx", exported / "model.int8.tflite"], work / "bundle", {})
    images = work / "frames"
    images.mkdir()
    for index in range(3):
        cv2.imwrite(str(images / f"{index}.png"), np.full((32, 32, 3), 60 * index, np.uint8))
    users = {user: secrets.token_urlsafe(12) for user in [COLLECTOR_USER, *DEVICES]}
    broker = Mosquitto(users=users, tls=True, persistence=True).start()
    ca = str(broker.certificates["ca"])
    url = f"mqtts://{COLLECTOR_USER}@127.0.0.1:{broker.port}"
    collector = start_collector(
        url, users[COLLECTOR_USER], ca, work / "fleet.db", work / "stats.json", work / "collector.log"
    )
    state = {
        "work": work,
        "bundle": bundle,
        "images": images,
        "users": users,
        "broker": broker,
        "ca": ca,
        "collector": collector,
        "db": work / "fleet.db",
        "stats": work / "stats.json",
    }
    yield state
    stop(collector)
    broker.close()


def _agent(fleet, device: str, *extra, name: str | None = None):
    url = f"mqtts://{device}@127.0.0.1:{fleet['broker'].port}"
    log = fleet["work"] / f"{name or device}.log"
    spool = fleet["work"] / f"spool-{device}"
    return start_agent(fleet["bundle"], log, device, url, fleet["users"][device], fleet["ca"], spool, *extra), log


def _stored(fleet, device: str) -> list[str]:
    with sqlite3.connect(fleet["db"], timeout=30) as db:
        return [row[0] for row in db.execute("SELECT report_id FROM reports WHERE device_id = ?", (device,))]


def _client(fleet, user: str, password: str | None = None):
    broker = fleet["broker"].broker(user)
    if password is not None:
        from dataclasses import replace

        broker = replace(broker, password=password)
    client = make_client(broker, f"{user}-test-{secrets.token_hex(3)}", persistent=False)
    connect(client, broker, persistent=False)
    return client


def test_wrong_password_and_acl_violations_are_refused(fleet):
    with pytest.raises(BrokerError, match="Not authorized|Bad user name or password"):
        _client(fleet, "pi-1", password="wrong-password")
    client = _client(fleet, "pi-1")
    codes = {}
    client.on_publish = lambda c, u, mid, reason, p: codes.__setitem__(mid, reason.value)
    own = client.publish(topic("pi-1", "status"), b'{"state": "test"}', qos=1).mid
    foreign = client.publish(topic("pi-2", "report"), json.dumps(good_report()), qos=1).mid
    wait_for(lambda: len(codes) == 2, 10, "two PUBACKs")
    assert codes[own] < 128 and codes[foreign] == 135  # MQTT 5: "not authorized", not a silent drop
    # Reading another device's commands: mosquitto 2.0 grants the SUBACK but never delivers them.
    received = []
    client.on_message = lambda c, u, m: received.append(m.topic)
    granted = []
    client.on_subscribe = lambda c, u, mid, reasons, p: granted.extend(r.value for r in reasons)
    client.subscribe([(topic("pi-2", "cmd"), 1), (topic("pi-1", "cmd"), 1)])
    wait_for(lambda: len(granted) == 2, 10, "SUBACK")
    operator = _client(fleet, COLLECTOR_USER)
    for device in ("pi-2", "pi-1"):
        body = json.dumps({"id": f"acl-{device}", "command": "bench", "runs": 1})
        operator.publish(topic(device, "cmd"), body, qos=1).wait_for_publish(10)
    wait_for(lambda: received, 10, "pi-1's own command")
    time.sleep(0.5)
    assert received == [topic("pi-1", "cmd")]
    operator.disconnect()
    operator.loop_stop()
    client.disconnect()
    client.loop_stop()


def test_reports_survive_a_broker_restart_once_each(fleet):
    agents = [_agent(fleet, device, "--interval", "0.3", "--reports", "12", *FAST) for device in ("pi-1", "pi-2")]
    wait_for(lambda: len(_stored(fleet, "pi-1")) + len(_stored(fleet, "pi-2")) >= 4, 60, "first reports")
    fleet["broker"].stop(signal.SIGTERM)  # persistence: mosquitto saves its queues on the way down
    time.sleep(2)
    fleet["broker"].start()
    for process, log in agents:
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    for device, (_, log) in zip(("pi-1", "pi-2"), agents, strict=True):
        spooled = logged_report_ids(log)
        assert len(spooled) == 12
        wait_for(lambda d=device, s=spooled: set(_stored(fleet, d)) == s, 60, f"{device}'s 12 reports stored")
        assert len(_stored(fleet, device)) == 12  # no duplicates, none lost
        assert not list((fleet["work"] / f"spool-{device}").glob("*.json"))
    stored = json.loads(
        sqlite3.connect(fleet["db"]).execute("SELECT body FROM reports WHERE device_id = 'pi-1' LIMIT 1").fetchone()[0]
    )
    assert stored["status"] == "ok" and stored["model"]["file"] == "model.onnx"
    assert stored["latency"]["runs"] == 5 and stored["device"]["id"] == "pi-1"


def test_agent_killed_mid_run_drains_its_spool_after_restart(fleet):
    fleet["broker"].stop()  # the device is offline: reports pile up in its spool
    process, log = _agent(fleet, "pi-3", "--interval", "0.2", *FAST, name="pi-3-first")
    wait_for(lambda: len(logged_report_ids(log)) >= 4, 60, "reports spooled while offline")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    spool = fleet["work"] / "spool-pi-3"
    pending = {p.name.split("-", 1)[1].removesuffix(".json") for p in spool.glob("*.json")}
    assert pending and pending == logged_report_ids(log)
    fleet["broker"].start()
    again, again_log = _agent(fleet, "pi-3", "--interval", "0", "--reports", "0", *FAST, name="pi-3-again")
    assert again.wait(timeout=90) == 0, again_log.read_text()[-3000:]
    assert not list(spool.glob("*.json"))
    wait_for(lambda: set(_stored(fleet, "pi-3")) == pending, 60, "the drained reports stored")
    wait_for(lambda: _status(fleet, "pi-3").get("state") == "stopped", 20, "pi-3's clean stop")
    # Killed while connected: the broker publishes its Last Will, and the fleet sees it offline.
    third, third_log = _agent(fleet, "pi-3", "--interval", "0", *FAST, name="pi-3-third")
    wait_for(lambda: _status(fleet, "pi-3").get("state") == "online", 60, "pi-3 online again")
    third.send_signal(signal.SIGKILL)
    third.wait(timeout=10)
    wait_for(lambda: _status(fleet, "pi-3").get("state") == "offline", 20, "the Last Will: pi-3 offline")


def test_junk_on_report_and_command_topics_is_counted_and_survived(fleet, monkeypatch, capsys):
    before = read_stats(fleet["stats"])
    junk = _client(fleet, "pi-4")
    report = good_report()
    report["device"]["id"] = "pi-4"
    claims_other = {**report, "device": {"id": "pi-1", "kind": "rpi"}}
    missing = {k: v for k, v in report.items() if k != "latency"}
    payloads = [
        b"\x00\xffnot json",
        b"[1]",
        b"x" * 70_000,
        json.dumps({**report, "schema": "edgekd-report/7"}),
        json.dumps(missing),
        json.dumps(claims_other),
        json.dumps(report),
    ]
    for payload in payloads:
        junk.publish(topic("pi-4", "report"), payload, qos=1).wait_for_publish(10)
    wait_for(lambda: _stored(fleet, "pi-4") == [report["report_id"]], 30, "the one good report stored")
    expected = {"malformed": 2, "oversized": 1, "unknown_version": 1, "invalid": 1, "wrong_device": 1}

    def counted():
        after = read_stats(fleet["stats"])
        return {reason: after.get(f"rejected_{reason}", 0) - before.get(f"rejected_{reason}", 0) for reason in expected}

    wait_for(lambda: counted() == expected, 10, f"the collector's counters to show {expected}")
    assert "invalid: report: field latency" in (fleet["work"] / "collector.log").read_text()  # logged, with why
    assert fleet["collector"].poll() is None

    # Commands: junk first, then every command the agent knows.
    process, log = _agent(fleet, "pi-5", "--interval", "0", "--source", fleet["images"], *FAST)
    operator = _client(fleet, COLLECTOR_USER)
    acks = []
    operator.on_message = lambda c, u, m: acks.append(json.loads(m.payload))
    operator.subscribe(topic("pi-5", "cmd/ack"), qos=1)
    wait_for(lambda: _status(fleet, "pi-5").get("state") == "online", 60, "pi-5 online")
    commands = [
        b"{broken",
        b"y" * 20_000,
        json.dumps({"id": "c1", "command": "reboot"}),
        json.dumps({"id": "c2", "command": "bench", "runs": "lots"}),
        json.dumps({"id": "c3", "command": "bench", "runs": 3, "data": "digits"}),
        json.dumps({"id": "c4", "command": "switch_model", "model": "model.int8.tflite"}),
        json.dumps({"id": "c5", "command": "switch_model", "model": "../../etc/passwd"}),
        json.dumps({"id": "c6", "command": "capture", "count": 2}),
        json.dumps({"id": "c3", "command": "bench", "runs": 3, "data": "digits"}),  # delivered twice: done once
    ]
    for command in commands:
        operator.publish(topic("pi-5", "cmd"), command, qos=1).wait_for_publish(10)
    # The same through the CLI, which waits for the acknowledgement (as the collector user: it may command).
    cli = ["--broker", f"mqtts://{COLLECTOR_USER}@127.0.0.1:{fleet['broker'].port}", "--ca-file", fleet["ca"]]
    monkeypatch.setenv("EDGEKD_MQTT_PASSWORD", fleet["users"][COLLECTOR_USER])
    assert main(["fleet", "cmd", "pi-5", "bench", "runs=2", *cli]) == 0
    assert '"ok": true' in capsys.readouterr().out
    assert main(["fleet", "cmd", "pi-5", "bench", "runs=many", *cli]) == 2  # the device's refusal, relayed
    assert "field runs: wrong type" in capsys.readouterr().out
    assert main(["fleet", "cmd", "pi-5", "stop", *cli]) == 0
    assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    wait_for(lambda: len(acks) >= 11, 20, "acknowledgements")
    by_id = {a["id"]: a for a in acks if a["id"]}
    assert sum(1 for a in acks if a["id"] is None and not a["ok"]) == 2  # broken JSON, oversized: no id to give
    assert not by_id["c1"]["ok"] and "unknown 'reboot'" in by_id["c1"]["error"]
    assert not by_id["c2"]["ok"] and "field runs" in by_id["c2"]["error"]
    assert by_id["c3"]["ok"] and sum(1 for a in acks if a["id"] == "c3") == 1
    assert by_id["c4"]["ok"] and not by_id["c5"]["ok"] and "not in the bundle" in by_id["c5"]["error"]
    assert by_id["c6"]["ok"] and by_id["c6"]["saved"] == 2 and len(list(_captures(by_id["c6"]))) == 2
    assert [a["command"] for a in acks[-3:]] == ["bench", "bench", "stop"] and acks[-1]["ok"]
    wait_for(lambda: by_id["c3"]["report_id"] in _stored(fleet, "pi-5"), 30, "the commanded report stored")
    with sqlite3.connect(fleet["db"]) as db:
        body = db.execute("SELECT body FROM reports WHERE report_id = ?", (by_id["c3"]["report_id"],)).fetchone()[0]
    commanded = json.loads(body)
    assert commanded["latency"]["runs"] == 3 and commanded["accuracy"]["dataset"] == "digits"  # labels -> accuracy
    assert commanded["source"]["kind"] == "images" and commanded["end_to_end"]["runs"] == 3  # FAST: 3 frames
    wait_for(lambda: _status(fleet, "pi-5").get("state") == "stopped", 20, "pi-5 stopped")
    assert _status(fleet, "pi-5")["model"] == "model.int8.tflite" and _status(fleet, "pi-5")["rejected_commands"] >= 5
    operator.disconnect()
    operator.loop_stop()
    junk.disconnect()
    junk.loop_stop()


def _captures(ack):
    from pathlib import Path

    return Path(ack["folder"]).glob("*.jpg")


def _status(fleet, device: str) -> dict:
    with sqlite3.connect(fleet["db"], timeout=30) as db:
        row = db.execute("SELECT status FROM devices WHERE device_id = ?", (device,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def test_a_postgresql_collector_beside_the_sqlite_one(fleet, tmp_path):
    """A second collector (its own persistent session) stores the same reports in PostgreSQL, once each."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"edgekd_fleet_{secrets.token_hex(4)}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    broker_url = f"mqtts://{COLLECTOR_USER}@127.0.0.1:{fleet['broker'].port}"
    args = [
        "-m",
        "edgekd.cli",
        "collect",
        "--broker",
        broker_url,
        "--ca-file",
        fleet["ca"],
        "--db",
        url,
        "--stats",
        tmp_path / "pg-stats.json",
        "--client-id",
        "edgekd-collector-pg",
    ]
    env = {"EDGEKD_MQTT_PASSWORD": fleet["users"][COLLECTOR_USER]}
    collector = spawn(args, fleet["work"] / "collector-pg.log", env)
    try:
        wait_for(lambda: (tmp_path / "pg-stats.json").is_file(), 30, "the PostgreSQL collector")
        device = _client(fleet, "pi-4")
        reports = []
        for _ in range(5):
            report = good_report()
            report["device"]["id"] = "pi-4"
            reports.append(report)
        for report in [*reports, reports[0]]:  # the first one twice, as a QoS 1 redelivery would
            device.publish(topic("pi-4", "report"), json.dumps(report), qos=1).wait_for_publish(10)
        expected = {r["report_id"] for r in reports}

        def stored():
            rows = admin.execute(f"SELECT report_id FROM {schema}.reports WHERE device_id = 'pi-4'").fetchall()
            return [row[0] for row in rows]

        wait_for(lambda: expected <= set(stored()), 30, "the reports in PostgreSQL")
        wait_for(lambda: read_stats(tmp_path / "pg-stats.json").get("duplicates") == 1, 10, "the duplicate counted")
        assert sorted(stored()) == sorted(expected)  # (pi-4's earlier report came before this session existed)
        device.disconnect()
        device.loop_stop()
    finally:
        stop(collector)
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def test_no_password_in_any_log_report_or_row(fleet):
    """Runs last: every log of this module's processes, the broker's, and every stored row."""
    texts = [p.read_text(errors="replace") for p in fleet["work"].glob("*.log")]
    texts.append(fleet["broker"].log.read_text(errors="replace"))
    with sqlite3.connect(fleet["db"]) as db:
        texts += [row[0] for row in db.execute("SELECT body FROM reports")]
        texts += [row[0] or "" for row in db.execute("SELECT status FROM devices")]
    assert len(texts) > 20
    for password in fleet["users"].values():
        assert not any(password in text for text in texts)
    assert any("mqtts://pi-1:***@127.0.0.1" in text for text in texts)  # the redacted form is what is logged
