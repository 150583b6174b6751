"""The serial <-> MQTT bridge: bench-mcu on the emulated Cortex-M4, the report published to
edgekd/<device>/report at QoS 1 and received, valid, by a subscriber on a real mosquitto."""

import importlib.util
import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from edgekd.bench.report import validate_report
from edgekd.fleet.mosquitto import Mosquitto
from tests.conftest import require_executable
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
        assert (
            load_bridge().main(["--model", str(model), "--broker", url, "--device-id", "qemu-m4", "--runs", "2"]) == 0
        )
        assert arrived.wait(10)
    finally:
        subscriber.loop_stop()
        broker.close()
    message = received[0]
    assert message.topic == "edgekd/qemu-m4/report" and message.qos == 1
    report = json.loads(message.payload)
    validate_report(report)
    assert report["device"] == {"id": "qemu-m4", "kind": "mcu"} and report["mcu"]["unit"] == "instr"
