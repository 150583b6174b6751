"""The fleet's sub-commands (`collect`, `fleet status|reports`, `deploy`): parsers and handlers, torch-free.
edgekd/cli.py registers them in TORCH_FREE_COMMANDS."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgekd.config import FleetConfig
from edgekd.errors import ConfigError
from edgekd.fleet.broker import answers, parse_broker
from edgekd.fleet.collector import CLIENT_ID
from edgekd.fleet.store import COLUMNS

console = Console(width=None if sys.stdout.isatty() else 160)  # pipes and logs get whole tables
DEFAULTS = FleetConfig()
QUIET_LOGGERS = ("amqtt", "transitions", "asyncio")


def _broker_options(p) -> None:
    p.add_argument(
        "--broker",
        help=f"mqtt[s]://[user[:password]@]host[:port] (default: EDGEKD_BROKER, else "
        f"{DEFAULTS.broker}); the password may come from EDGEKD_MQTT_PASSWORD",
    )
    p.add_argument("--ca-file", help="CA certificate for mqtts:// (default: EDGEKD_MQTT_CA)")


def _broker(args):
    url = args.broker or os.environ.get("EDGEKD_BROKER")
    return parse_broker(url or DEFAULTS.broker, args.ca_file or os.environ.get("EDGEKD_MQTT_CA")), url is None


def _store(args) -> str:
    return args.db or os.environ.get("EDGEKD_STORE") or DEFAULTS.store


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------ collect


def cmd_collect(args) -> int:
    from edgekd.fleet.collector import Collector

    _logging(args.log_level)
    broker, defaulted = _broker(args)
    embedded = None
    if defaulted and not answers(broker.host, broker.port):
        from edgekd.fleet.embedded import EmbeddedBroker

        embedded = EmbeddedBroker(broker.host, broker.port)
        broker = embedded.start()
        console.print(
            f"no broker on {broker.redacted()}: started the embedded amqtt broker (fine for a handful "
            "of devices; see docs/fleet.md)"
        )
    config = FleetConfig(max_payload_bytes=args.max_bytes)
    collector = Collector(broker, _store(args), config, client_id=args.client_id)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    console.print(f"collecting from {broker.redacted()} into {_redact_store(_store(args))}")
    try:
        with console.status("waiting for reports") as status:
            while not stop.wait(0.5):
                stats = collector.stats()
                status.update(_describe(stats))
                if args.stats:
                    _write_json(args.stats, stats)
                if args.count and stats.get("stored", 0) >= args.count:
                    break
    finally:
        collector.stop()
        if embedded:
            embedded.stop()
    stats = collector.stats()
    if args.stats:
        _write_json(args.stats, stats)
    console.print(_describe(stats))
    return 0


def _describe(stats: dict) -> str:
    rejected = {k.removeprefix("rejected_"): v for k, v in stats.items() if k.startswith("rejected_")}
    text = f"received {stats.get('received', 0)}, stored {stats.get('stored', 0)}, "
    text += f"duplicates {stats.get('duplicates', 0)}, rejected {sum(rejected.values())}"
    return text + (f" ({', '.join(f'{k} {v}' for k, v in sorted(rejected.items()))})" if rejected else "")


def _redact_store(where: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(where)
    if parts.password:
        return where.replace(f":{parts.password}@", ":***@")
    return where


def _write_json(path: Path, data: dict) -> None:
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)


def _add_collect_parser(sub) -> None:
    p = sub.add_parser("collect", help="store every device's reports (MQTT -> SQLite/PostgreSQL), idempotently")
    _broker_options(p)
    p.add_argument("--db", help=f"SQLite file or postgresql://... (default: EDGEKD_STORE, else {DEFAULTS.store})")
    p.add_argument("--max-bytes", type=int, default=DEFAULTS.max_payload_bytes, help="larger messages are dropped")
    p.add_argument("--count", type=int, help="exit once this many reports are stored")
    p.add_argument(
        "--client-id",
        default=CLIENT_ID,
        help="MQTT client id, i.e. which persistent session (default %(default)s; give a second collector its own)",
    )
    p.add_argument("--stats", type=Path, help="keep the counters (stored, duplicates, rejected...) in this JSON file")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_collect)


# ------------------------------------------------------------------ fleet status / reports


def _ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0, time.time() - timestamp)
    when = datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    return f"{when} ({seconds:.0f} s ago)" if seconds < 3600 else when


def cmd_fleet_status(args) -> int:
    from edgekd.fleet.store import open_store

    store = open_store(_store(args), must_exist=True)
    devices = store.devices()
    store.close()
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    table = Table(title=f"edgekd fleet: {len(devices)} device(s)")
    for column in ("device", "state", "model", "last seen", "reports"):
        table.add_column(column, justify="right" if column == "reports" else "left")
    for device in devices:
        state = device["state"] or "-"
        colour = {"online": "green", "measuring": "green", "offline": "red"}.get(state, "yellow")
        table.add_row(
            device["device_id"],
            f"[{colour}]{state}[/]",
            device["model"] or "-",
            _ago(device["last_seen"]),
            str(device["reports"]),
        )
    console.print(table)
    return 0


FLAT_COLUMNS = tuple(c for c in COLUMNS if c not in ("stored_at", "body"))  # what CSV exports


def cmd_fleet_reports(args) -> int:
    from edgekd.fleet.store import open_store

    store = open_store(_store(args), must_exist=True)
    rows = store.reports(args.device, args.model)
    store.close()
    if args.csv:
        with _output(args.csv) as handle:
            writer = csv.DictWriter(handle, FLAT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        with _output(args.json) as handle:
            json.dump([row["report"] for row in rows], handle, indent=2)
    if args.plot:
        from edgekd.fleet.plots import latency_per_device

        console.print(f"plot: {latency_per_device(rows, args.plot)}")
    if not (args.csv or args.json) or "-" not in (str(args.csv), str(args.json)):
        _print_reports(rows[-args.last :] if args.last else rows, len(rows))
    return 0


class _output:
    """A file, or stdout for '-'."""

    def __init__(self, where: Path):
        self.where = str(where)

    def __enter__(self):
        self.handle = sys.stdout if self.where == "-" else open(self.where, "w", newline="")
        return self.handle

    def __exit__(self, *exc):
        if self.handle is not sys.stdout:
            self.handle.close()


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_reports(rows: list[dict], total: int) -> None:
    table = Table(title=f"edgekd fleet reports: {total} (showing {len(rows)})")
    for column in ("finished", "device", "model", "status", "runtime", "p50 ms", "p95 ms", "FPS", "peak MB", "acc."):
        table.add_column(column, justify="left" if column in ("finished", "device", "model", "status") else "right")
    for row in rows:
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]error[/]: {row['report'].get('error', '')[:60]}"
        peak = row["peak_rss_bytes"] / 2**20 if row["peak_rss_bytes"] else None
        table.add_row(
            row["finished_at"][:19],
            row["device_id"],
            row["model_file"],
            status,
            row["runtime"] or "-",
            _number(row["p50_ms"], 3),
            _number(row["p95_ms"], 3),
            _number(row["fps"], 1),
            _number(peak, 1),
            _number(row["accuracy"], 4),
        )
    console.print(table)


def _parameter(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"parameter {text!r}: write it as key=value, e.g. runs=50")
    try:
        return key, json.loads(value)  # numbers stay numbers
    except json.JSONDecodeError:
        return key, value


def cmd_fleet_command(args) -> int:
    """Send a command to one device and wait for its acknowledgement."""
    import queue
    import uuid

    from edgekd.fleet.mqtt import connect, make_client, topic

    body = {"id": uuid.uuid4().hex[:12], "command": args.name, **dict(map(_parameter, args.params))}
    broker, _ = _broker(args)
    acks: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    client = make_client(broker, f"edgekd-cli-{body['id']}", persistent=False)
    client.on_message = lambda c, u, message: acks.put(message.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    connect(client, broker, persistent=False, on_connected=lambda c: c.subscribe(topic(args.device, "cmd/ack"), 1))
    try:
        subscribed.wait(10)
        client.publish(topic(args.device, "cmd"), json.dumps(body), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + args.timeout
        with console.status(f"{args.device}: {args.name} sent, waiting for its acknowledgement"):
            while (left := deadline - time.monotonic()) > 0:
                try:
                    ack = json.loads(acks.get(timeout=left))
                except queue.Empty:
                    break
                except json.JSONDecodeError:
                    continue
                if isinstance(ack, dict) and ack.get("id") == body["id"]:
                    console.print_json(data=ack)
                    return 0 if ack.get("ok") else 2
    finally:
        client.disconnect()
        client.loop_stop()
    raise ConfigError(
        f"no acknowledgement from {args.device} within {args.timeout:g} s: it is offline or busy "
        "(the command waits in its session and runs when it reconnects)"
    )


def _add_fleet_parser(sub) -> None:
    p = sub.add_parser("fleet", help="the collected fleet: devices (status) and their reports (table, CSV, JSON, plot)")
    fleet = p.add_subparsers(dest="fleet_command", required=True, metavar="{status,reports,cmd}")
    status = fleet.add_parser("status", help="devices: state, model, last seen, reports")
    status.add_argument("--json", action="store_true")
    reports = fleet.add_parser("reports", help="stored reports, filtered; --csv / --json export, --plot PNG")
    reports.add_argument("--device", help="only this device id")
    reports.add_argument("--model", help="only this model file name")
    reports.add_argument("--csv", type=Path, help="write the rows as CSV ('-': stdout)")
    reports.add_argument("--json", type=Path, help="write the full reports as JSON ('-': stdout)")
    reports.add_argument("--plot", type=Path, help="latency per device as a PNG")
    reports.add_argument("--last", type=int, default=50, help="rows shown in the table (0: all)")
    command = fleet.add_parser("cmd", help="send a command to a device and wait for its acknowledgement")
    command.add_argument("device", help="device id")
    command.add_argument("name", choices=["bench", "switch_model", "capture", "stop"])
    command.add_argument("params", nargs="*", metavar="KEY=VALUE", help="e.g. runs=50 model=model.onnx count=20")
    command.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the acknowledgement")
    _broker_options(command)
    command.set_defaults(func=cmd_fleet_command)
    for q in (status, reports):
        q.add_argument("--db", help=f"SQLite file or postgresql://... (default: EDGEKD_STORE, else {DEFAULTS.store})")
    status.set_defaults(func=cmd_fleet_status)
    reports.set_defaults(func=cmd_fleet_reports)


# ------------------------------------------------------------------ deploy


def cmd_deploy(args) -> int:
    from edgekd.deploy.targets import DeployOptions, deploy

    broker = None
    if args.broker:
        broker = parse_broker(args.broker, args.ca_file or os.environ.get("EDGEKD_MQTT_CA"))
    settings = (("source", args.source), ("interval", args.interval), ("runs", args.runs), ("demo", args.demo))
    agent = {k: v for k, v in settings if v}
    if args.demo:
        from edgekd.demo.serve import parse_address

        parse_address(args.demo)  # a typo fails here, not on the device
        if not args.source:
            raise ConfigError(
                "--demo needs --source (camera:0, picam:0, a video file or an image folder on the device)"
            )
    options = DeployOptions(
        target=args.target,
        host=args.host,
        models=args.model,
        bundle=args.bundle,
        broker=broker,
        device_id=args.device_id,
        agent=agent,
        root=args.root,
        ssh_config=args.ssh_config,
        python=args.python,
        system_site_packages=args.system_site_packages,
        no_deps=args.no_deps,
        wheel=args.wheel,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        console.print("[yellow]dry run: nothing is copied, installed or started[/]")
        ident = deploy(options, console.print)
    else:
        with console.status("deploying") as status:

            def say(text: str) -> None:
                if text:
                    console.print(text)
                    status.update(text.splitlines()[0])

            ident = deploy(options, say)
    console.print(f"[green]deployed[/] bundle {ident}" if not args.dry_run else f"dry run of bundle {ident} done")
    return 0


def _add_deploy_parser(sub) -> None:
    p = sub.add_parser(
        "deploy", help="bundle a model and its agent, copy it to a device, start it (rolled back on failure)"
    )
    p.add_argument("--target", choices=["rpi", "local", "esp32"], required=True)
    p.add_argument("--host", help="rpi: user@host or an ~/.ssh/config alias; esp32: the serial port")
    p.add_argument(
        "--model",
        type=Path,
        action="append",
        help="exported model (manifest beside it); repeat for more, the first runs",
    )
    p.add_argument("--bundle", type=Path, help="deploy this already built bundle folder instead")
    _broker_options(p)
    p.add_argument("--device-id", help="the device's name in topics and reports (default: its host name)")
    p.add_argument(
        "--source",
        help="agent frame source on the device: camera:0, picam:0 (Camera Module: with --system-site-packages), "
        "a video file or an image folder",
    )
    p.add_argument("--interval", type=float, help=f"seconds between reports (default {DEFAULTS.report_interval_s:g})")
    p.add_argument("--runs", type=int, help=f"timed runs per report (default {DEFAULTS.runs})")
    p.add_argument(
        "--demo", metavar="HOST:PORT", help="the agent also serves the live face demo of --source on this address"
    )
    p.add_argument("--root", help=f"folder on the device (default ~/{DEFAULTS.remote_root}; local: ~/.edgekd/device)")
    p.add_argument("--ssh-config", type=Path, help="ssh -F FILE (default: ~/.ssh/config); EDGEKD_SSH_OPTIONS adds more")
    p.add_argument("--python", default="python3", help="the device's Python that creates the venv")
    p.add_argument("--system-site-packages", action="store_true", help="venv sees apt packages (picamera2)")
    p.add_argument("--no-deps", action="store_true", help="install only edgekd: its dependencies are on the device")
    p.add_argument("--wheel", type=Path, help="edgekd wheel to install on the device (default: built from source)")
    p.add_argument("--dry-run", action="store_true", help="print every step, run none")
    p.set_defaults(func=cmd_deploy)


FLEET_COMMANDS = {"collect": _add_collect_parser, "fleet": _add_fleet_parser, "deploy": _add_deploy_parser}
