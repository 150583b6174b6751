"""Serial <-> MQTT bridge: a host process beside a microcontroller. It runs `bench-mcu` against the board
(a serial port, or `socket://` to QEMU) and publishes each report to `edgekd/<device>/report` at QoS 1 through
edgekd.fleet's MQTT client (TLS, passwords, reconnects). Store-and-forward as the Pi agent: every report is
spooled to disk first and deleted only on the broker's PUBACK, so a broker outage loses nothing; what could not
be sent goes with the next run.

    python device_agents/serial_bridge/bridge.py --port /dev/ttyUSB0 --model model.int8.tflite \
        --broker mqtt://broker:1883 --device-id esp32-lab-1 --data faces --every 3600
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgekd.errors import EdgeKDError  # noqa: E402
from edgekd.fleet.broker import parse_broker  # noqa: E402
from edgekd.fleet.mqtt import connect, make_client, topic  # noqa: E402
from edgekd.fleet.spool import Spool, SpoolSender  # noqa: E402
from edgekd.mcu.bench_mcu import McuOptions, bench_mcu  # noqa: E402

PUBACK_TIMEOUT = 30.0


def send_spooled(spool: Spool, broker_url: str, device_id: str, timeout: float = PUBACK_TIMEOUT) -> int:
    """Publish every spooled report, deleting each on its PUBACK; returns how many are still spooled."""
    broker = parse_broker(broker_url)
    client = make_client(broker, f"serial-bridge-{device_id}")
    sender = SpoolSender(spool, client, topic(device_id, "report"))
    client.on_publish = sender.on_publish
    connect(client, broker, background=True)  # an unreachable broker is retried until the timeout
    try:
        sender.drain(timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    return len(spool.pending())


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
    p.add_argument("--spool", type=Path, help="report spool (default ~/.edgekd/serial-bridge/<device>/spool)")
    p.add_argument("--timeout", type=float, default=PUBACK_TIMEOUT, help="seconds to wait for the broker's PUBACKs")
    args = p.parse_args(argv)
    spool = Spool(args.spool or Path.home() / ".edgekd" / "serial-bridge" / args.device_id / "spool")
    while True:
        options = McuOptions(runs=args.runs, data=args.data, max_images=args.max_images, device_id=args.device_id)
        try:
            report = bench_mcu(args.model, args.port, options)
            spool.put(report)
            left = send_spooled(spool, args.broker, args.device_id, args.timeout)
        except EdgeKDError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if left:
            print(
                f"error: {left} report(s) stay spooled in {spool.folder}: the broker did not acknowledge them "
                "in time; they are sent on the next run",
                file=sys.stderr,
            )
            return 3
        print(f"published {report['report_id']} to {topic(args.device_id, 'report')}", flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
