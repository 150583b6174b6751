"""The device agent: runs a deployed bundle's model, publishes reports over MQTT, obeys commands.

    python -m device_agents.rpi.agent --bundle ~/edgekd/current [--source camera:0|picam:0|video.avi|images/]
    edgekd-agent --bundle DIR --health-check      # load, run, check outputs; no MQTT

The broker comes from --broker or EDGEKD_BROKER (mqtts://user@host, password in EDGEKD_MQTT_PASSWORD, CA file in
EDGEKD_MQTT_CA): deploy writes them to a 0600 environment file that the systemd unit reads, so they appear in no
command line, log or report. Every report is spooled to disk first and deleted on the broker's PUBACK.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path

from device_agents.rpi.commands import CommandError, parse_command
from device_agents.rpi.measure import health_check, measure
from device_agents.rpi.sources import FrameSource
from edgekd.bench.bench import BenchOptions
from edgekd.bench.report import utc_now
from edgekd.config import FleetConfig
from edgekd.deploy.bundle import model_files, verify_bundle
from edgekd.errors import EdgeKDError
from edgekd.fleet.broker import parse_broker
from edgekd.fleet.mqtt import as_json, check_device_id, connect, make_client, topic
from edgekd.fleet.spool import SenderThread, Spool, SpoolSender

log = logging.getLogger("edgekd.agent")
DEFAULTS = FleetConfig()


class Agent:
    def __init__(self, args):
        self.bundle = Path(args.bundle).resolve()  # `current` may be swapped under us: keep the one we verified
        self.described = verify_bundle(self.bundle)
        settings = {**self.described.get("agent", {}), **{k: v for k, v in vars(args).items() if v is not None}}
        self.settings = settings
        self.model = self.bundle / "models" / self.described["model"]
        self.device_id = check_device_id(
            settings.get("device_id") or os.environ.get("EDGEKD_DEVICE_ID") or socket.gethostname().split(".")[0]
        )
        self.broker = parse_broker(
            settings.get("broker") or os.environ.get("EDGEKD_BROKER") or DEFAULTS.broker,
            settings.get("ca_file") or os.environ.get("EDGEKD_MQTT_CA"),
        )
        self.spool = Spool(settings.get("spool") or self.bundle.parent.parent / "spool")
        self.commands: queue.Queue = queue.Queue()
        self.handled: deque = deque(maxlen=256)  # command ids already done (QoS 1 may deliver twice)
        self.rejected_commands = 0
        self.reported = 0
        self.state = "starting"
        self.stopping = False
        self.source = None
        self.client = make_client(self.broker, self.device_id)
        self.client.will_set(self._topic("status"), as_json(self._status("offline")), qos=1, retain=True)
        self.sender = SpoolSender(self.spool, self.client, self._topic("report"))
        self.client.on_publish = self.sender.on_publish
        self.client.on_message = self._on_message

    def _topic(self, kind: str) -> str:
        return topic(self.device_id, kind)

    def _status(self, state: str) -> dict:
        return {
            "device": self.device_id,
            "state": state,
            "model": self.model.name,
            "model_sha256": self.described["files"].get(f"models/{self.model.name}"),
            "time": utc_now(),
            "spooled": len(self.spool.pending()),
            "rejected_commands": self.rejected_commands,
        }

    def publish_status(self, state: str | None = None) -> None:
        self.state = state or self.state
        self.client.publish(self._topic("status"), as_json(self._status(self.state)), qos=1, retain=True)

    def _on_connected(self, client) -> None:
        client.subscribe(self._topic("cmd"), qos=1)
        self.publish_status()

    def _on_message(self, client, userdata, message) -> None:
        self.commands.put(message.payload)

    # ------------------------------------------------------------------ commands

    def _ack(self, command_id, name, ok: bool, **details) -> None:
        body = {"id": command_id, "command": name, "ok": ok, "device": self.device_id, "time": utc_now(), **details}
        self.client.publish(self._topic("cmd/ack"), as_json(body), qos=1)

    def handle(self, raw: bytes) -> None:
        try:
            command = parse_command(raw)
        except CommandError as error:
            self.rejected_commands += 1
            log.warning("rejected command: %s", error)
            self._ack(error.command_id, error.name, False, error=str(error))
            return
        if command["id"] in self.handled:
            return
        self.handled.append(command["id"])
        name = command.pop("command")
        command_id = command.pop("id")
        try:
            details = getattr(self, f"_do_{name}")(**command)
        except EdgeKDError as error:
            self._ack(command_id, name, False, error=str(error))
            return
        self._ack(command_id, name, True, **details)

    def _do_bench(self, **overrides) -> dict:
        report = self.report(**overrides)
        return {"report_id": report["report_id"], "status": report["status"]}

    def _do_switch_model(self, model: str) -> dict:
        candidates = {p.name: p for p in model_files(self.bundle, self.described)}
        if model not in candidates:
            raise EdgeKDError(f"field model: {model!r} is not in the bundle ({', '.join(sorted(candidates))})")
        problem = health_check(candidates[model], self.settings.get("threads", 1))
        if problem:
            raise EdgeKDError(f"health check failed, keeping {self.model.name}: {problem}")
        self.model = candidates[model]
        self.publish_status()
        return {"model": model}

    def _do_capture(self, count: int) -> dict:
        import cv2

        folder = Path(self.settings.get("captures") or self.spool.folder.parent / "captures") / time.strftime(
            "%Y%m%d-%H%M%S"
        )
        folder.mkdir(parents=True, exist_ok=True)
        source = self._source()
        if source is None:
            raise EdgeKDError("capture needs a frame source: start the agent with --source")
        for index in range(count):
            cv2.imwrite(str(folder / f"frame_{index:05d}.jpg"), cv2.cvtColor(source.read(), cv2.COLOR_RGB2BGR))
        return {"saved": count, "folder": str(folder)}

    def _do_stop(self) -> dict:
        self.stopping = True
        return {}

    # ------------------------------------------------------------------ measuring

    def _source(self):
        if self.settings.get("demo"):  # the demo owns the camera; reports time the model on prepared inputs
            return None
        if self.source is None and self.settings.get("source"):
            self.source = FrameSource(self.settings["source"])
        return self.source

    def report(self, **overrides) -> dict:
        """Measure the current model, spool the report (the sender publishes it), return it."""
        settings = {**self.settings, **overrides}
        options = BenchOptions(
            runs=settings.get("runs", DEFAULTS.runs),
            seconds=settings.get("seconds"),
            warmup=settings.get("warmup", DEFAULTS.warmup),
            threads=settings.get("threads", 1),
            data=settings.get("data"),
            device_id=self.device_id,
            device_kind=settings.get("device_kind"),
        )
        self.publish_status("measuring")
        report = measure(self.model, options.check(), self._source(), settings.get("frames", DEFAULTS.frames))
        self.spool.put(report)
        self.reported += 1
        self.publish_status("online")
        log.info("report %s: %s %s", report["report_id"], self.model.name, report["status"])
        return report

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        connect(self.client, self.broker, on_connected=self._on_connected, background=True)
        log.info("agent %s: model %s, broker %s", self.device_id, self.model.name, self.broker.redacted())
        if os.environ.get("EDGEKD_READY_FILE"):  # for `service alive`: started, bundle verified, broker not refusing
            Path(os.environ["EDGEKD_READY_FILE"]).write_text(str(os.getpid()))
        sender = SenderThread(self.sender)
        sender.start()
        demo = self._start_demo() if self.settings.get("demo") else None
        self.state = "online"
        interval = float(self.settings.get("interval", DEFAULTS.report_interval_s))
        heartbeat = float(self.settings.get("heartbeat", DEFAULTS.heartbeat_s))
        limit = self.settings.get("reports")
        next_report = time.monotonic() if interval > 0 else float("inf")
        next_beat = time.monotonic() + heartbeat
        while not self.stopping:
            now = time.monotonic()
            if limit is not None and self.reported >= limit:
                if not self.spool.pending() or self.settings.get("no_wait"):
                    break
                next_report = float("inf")
            if now >= next_report:
                try:
                    self.report()
                except EdgeKDError as error:  # e.g. the camera went away: say so, keep obeying commands
                    log.error("measuring failed: %s", error)
                    self.publish_status("error")
                next_report = now + interval
            if now >= next_beat:
                self.publish_status()
                next_beat = now + heartbeat
            try:
                self.handle(self.commands.get(timeout=max(0.05, min(next_report, next_beat, now + 0.5) - now)))
            except queue.Empty:
                pass
        if demo is not None:
            self.demo_stop.set()
            demo.join(timeout=5)
        return self.shutdown(sender)

    def _start_demo(self) -> threading.Thread:
        """`edgekd demo face` on the agent's source with the deployed model, served on `demo` (HOST:PORT)."""
        from edgekd.demo.face import face_demo

        source = self.settings.get("source")
        if not source:
            raise EdgeKDError("--demo needs --source (camera:N, picam:N, a video file or an image folder)")
        self.demo_stop = threading.Event()

        def serve() -> None:
            try:
                face_demo(
                    source=source,  # the same spec syntax: edgekd.runtime.sources reads both
                    model=self.model,
                    serve=self.settings["demo"],
                    window=False,
                    loop=True,
                    threads=self.settings.get("threads", 1),
                    stop=self.demo_stop,
                    announce=log.info,
                )
            except EdgeKDError as error:
                log.error("demo stopped: %s", error)

        thread = threading.Thread(target=serve, name="demo", daemon=True)
        thread.start()
        return thread

    def shutdown(self, sender: SenderThread) -> int:
        sender.stopping.set()
        sender.join(timeout=5)
        self.sender.drain(timeout=5)  # what is left stays spooled for the next start
        info = self.client.publish(self._topic("status"), as_json(self._status("stopped")), qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=3)
        except RuntimeError:  # offline: the Last Will says so instead
            pass
        self.client.disconnect()
        self.client.loop_stop()
        if self.source is not None:
            self.source.close()
        log.info("agent stopped; %d report(s) still spooled", len(self.spool.pending()))
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekd-agent", description="Run a deployed edgekd bundle and report over MQTT.")
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (deploy's ROOT/current)")
    p.add_argument("--health-check", action="store_true", help="load and run the model once, then exit 0 or 2")
    p.add_argument("--device-id", help="default: EDGEKD_DEVICE_ID, the bundle's setting, or the host name")
    p.add_argument("--broker", help="mqtt[s]://[user@]host[:port] (default: EDGEKD_BROKER, else localhost)")
    p.add_argument("--ca-file", help="CA certificate of an mqtts:// broker (default: EDGEKD_MQTT_CA)")
    p.add_argument("--spool", type=Path, help="report spool folder (default: beside the bundles)")
    p.add_argument(
        "--source",
        help="camera:N (V4L2), picam:N (Raspberry Pi Camera Module, needs picamera2), a video file or an image "
        "folder, timed end to end",
    )
    p.add_argument("--data", help="labelled dataset (built-in name or folder) for accuracy")
    p.add_argument("--demo", metavar="HOST:PORT", help="also serve the live face demo of --source on this address")
    p.add_argument(
        "--interval",
        type=float,
        help=f"seconds between reports; 0: on command only (default: {DEFAULTS.report_interval_s:g})",
    )
    p.add_argument("--heartbeat", type=float, help=f"seconds between status updates ({DEFAULTS.heartbeat_s:g})")
    p.add_argument("--runs", type=int, help=f"timed runs per report ({DEFAULTS.runs})")
    p.add_argument("--warmup", type=int)
    p.add_argument("--frames", type=int, help=f"source frames timed per report ({DEFAULTS.frames})")
    p.add_argument("--reports", type=int, help="exit after this many reports, once the spool is empty")
    p.add_argument("--no-wait", action="store_true", default=None, help="with --reports: exit without draining")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.health_check:
            described = verify_bundle(args.bundle)
            problem = health_check(Path(args.bundle) / "models" / described["model"])
            if problem:
                raise EdgeKDError(f"health check failed: {problem}")
            print(f"ok: {described['model']} loads, runs and gives sane outputs")
            return 0
        return Agent(args).run()
    except EdgeKDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
