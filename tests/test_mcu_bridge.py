"""The serial <-> MQTT bridge: bench-mcu on the emulated Cortex-M4, the report published to
edgekd/<device>/report at QoS 1 and received, valid, by a subscriber on a real mosquitto; a report made while the
broker is down stays spooled and is sent by the next run."""

import importlib.util
import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from edgekd.bench.report import validate_report
from edgekd.fleet.mosquitto import Mosquitto, free_port
from tests.conftest import require_executable
from tests.fleet_helpers import wait_for
from tests.mcu_helpers import kernel_zoo

BRIDGE = Path(__file__).resolve().parents[1] / "device_agents" / "serial_bridge" / "bridge.py"


def load_bridge():
    spec = importlib.util.spec_from_file_location("serial_bridge", BRIDGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bridge_publishes_the_mcu_report(tmp_path):
    require_executable("arm-none-eabi-gcc")
    require_executable("qemu-system-arm")
    model = kernel_zoo(tmp_path, 6, 4, (8, 8))
    broker = Mosquitto().start()  # the fleet tests need mosquitto too: install.sh installs it
    received, arrived, subscribed = [], threading.Event(), threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    subscriber.on_message = lambda client, userdata, message: (received.append(message), arrived.set())
    subscriber.on_subscribe = lambda *args: subscribed.set()
    try:
        subscriber.connect("127.0.0.1", broker.port)
        subscriber.subscribe("edgekd/+/report", qos=1)
        subscriber.loop_start()
        url = broker.broker().url()
        args = ["--model", str(model), "--device-id", "qemu-m4", "--runs", "2", "--spool", str(tmp_path / "spool")]
        # The broker is down: the report stays spooled and the bridge says so (exit 3) ...
        down = f"mqtt://127.0.0.1:{free_port()}"
        assert load_bridge().main([*args, "--broker", down, "--timeout", "2"]) == 3
        assert len(list((tmp_path / "spool").glob("*.json"))) == 1
        # ... and goes with the next run, beside that run's report; the spool is empty after the PUBACKs.
        assert load_bridge().main([*args, "--broker", url]) == 0
        assert arrived.wait(10)
        wait_for(lambda: len(received) == 2, 10, "both reports")
        assert not list((tmp_path / "spool").glob("*.json"))
    finally:
        subscriber.loop_stop()
        broker.close()
    message = received[0]
    assert message.topic == "edgekd/qemu-m4/report" and message.qos == 1
    report = json.loads(message.payload)
    validate_report(report)
    assert report["device"] == {"id": "qemu-m4", "kind": "mcu"} and report["mcu"]["unit"] == "instr"
