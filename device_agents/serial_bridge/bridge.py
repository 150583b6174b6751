"""Serial <-> MQTT bridge: a host process beside a microcontroller. It runs `bench-mcu` against the board
(a serial port, or `socket://` to QEMU) and publishes each report to `edgekd/<device>/report` at QoS 1, waiting
for the broker's PUBACK, through edgekd.fleet's MQTT client (TLS, passwords, reconnects).

    python device_agents/serial_bridge/bridge.py --port /dev/ttyUSB0 --model model.int8.tflite \
        --broker mqtt://broker:1883 --device-id esp32-lab-1 --data faces --every 3600
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgekd.fleet.broker import parse_broker  # noqa: E402
from edgekd.fleet.mqtt import connect, make_client, topic  # noqa: E402
from edgekd.mcu.bench_mcu import McuOptions, bench_mcu  # noqa: E402

PUBACK_TIMEOUT = 30.0


def publish(report: dict, broker_url: str, device_id: str) -> None:
    import json

    broker = parse_broker(broker_url)
    client = make_client(broker, f"serial-bridge-{device_id}")
    connect(client, broker)
    try:
        info = client.publish(topic(device_id, "report"), json.dumps(report), qos=1)
        info.wait_for_publish(PUBACK_TIMEOUT)  # raises if the broker never acknowledges
    finally:
        client.loop_stop()
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", help="serial URL; default: an emulated Cortex-M4 booted here")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--broker", required=True, help="mqtt[s]://[user[:password]@]host:port")
    p.add_argument("--device-id", required=True)
    p.add_argument("--data", help="dataset for accuracy on the device")
    p.add_argument("--max-images", type=int)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--every", type=float, help="repeat every this many seconds (default: once)")
    args = p.parse_args(argv)
    while True:
        options = McuOptions(runs=args.runs, data=args.data, max_images=args.max_images, device_id=args.device_id)
        report = bench_mcu(args.model, args.port, options)
        publish(report, args.broker, args.device_id)
        print(f"published {report['report_id']} to {topic(args.device_id, 'report')}", flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
