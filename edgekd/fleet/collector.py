"""The collector: subscribes to every device's reports and status, validates each message, stores reports by id.

A message that is too large, not JSON, not a report of a known schema version, or that claims another device than
its topic is logged, counted and acknowledged (so the broker does not send it again); it never stops the rest.
Valid reports go to a writer thread that stores them in batches, one transaction each, and only then acknowledges
them (manual PUBACK): a collector killed mid-batch gets those reports again from its persistent session.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter

from edgekd.bench.report import REPORT_VERSION, ReportError, validate_report
from edgekd.config import FleetConfig
from edgekd.fleet.broker import Broker
from edgekd.fleet.mqtt import connect, make_client, parse_topic, topic
from edgekd.fleet.store import open_store

log = logging.getLogger("edgekd.collector")
CLIENT_ID = "edgekd-collector"


def classify(raw: bytes, device_id: str, max_bytes: int) -> tuple[dict | None, str | None]:
    """(report, None) for a valid report from `device_id`, else (None, reason)."""
    if len(raw) > max_bytes:
        return None, "oversized"
    try:
        report = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "malformed"
    if not isinstance(report, dict):
        return None, "malformed"
    if report.get("schema") != REPORT_VERSION:
        return None, "unknown_version"
    try:
        validate_report(report, f"report from {device_id}")
    except ReportError as error:
        log.debug("%s", error)
        return None, "invalid"
    if report["device"]["id"] != device_id:  # the ACL checked the topic; the payload must agree with it
        return None, "wrong_device"
    return report, None


def _why_invalid(raw: bytes) -> str:
    """The schema's own words for a rejected report (`field latency.p50_ms: ...`), for the log."""
    try:
        validate_report(json.loads(raw), "report")
    except (ReportError, ValueError) as error:
        return str(error)
    return ""


class Collector:
    def __init__(self, broker: Broker, store: str, config: FleetConfig | None = None, client_id: str = CLIENT_ID):
        self.broker, self.config = broker, config or FleetConfig()
        self.store = open_store(store)
        self.client = make_client(broker, client_id, manual_ack=True)
        self.client.on_message = self._on_message
        self.inbox: queue.Queue = queue.Queue()
        self.counts: Counter = Counter()
        self.started = time.monotonic()
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._writer.start()
        connect(self.client, self.broker, on_connected=self._subscribe)
        log.info("collecting from %s into %s", self.broker.redacted(), type(self.store).__name__)

    def _subscribe(self, client) -> None:
        client.subscribe([(topic("+", kind), 1) for kind in ("report", "status", "cmd/ack")])

    def _reject(self, message, reason: str, detail: str = "") -> None:
        self.counts[f"rejected_{reason}"] += 1
        count = self.counts[f"rejected_{reason}"]
        if count <= 10 or count % 1000 == 0:  # a flood of junk must not flood the log too
            why = f"{reason}: {detail[:300]}" if detail else reason
            log.warning("rejected message on %s: %s (%d so far)", message.topic[:200], why, count)
        self.client.ack(message.mid, message.qos)

    def _on_message(self, client, userdata, message) -> None:
        self.counts["received"] += 1
        where = parse_topic(message.topic)
        if where is None:
            return self._reject(message, "unknown_topic")
        device_id, kind = where
        if kind == "report":
            report, reason = classify(message.payload, device_id, self.config.max_payload_bytes)
            if reason:
                return self._reject(message, reason, _why_invalid(message.payload) if reason == "invalid" else "")
            self.inbox.put(("report", report, message))
        elif kind == "status":
            status, reason = self._parse_status(message.payload)
            if reason:
                return self._reject(message, reason)
            self.inbox.put(("status", (device_id, status), message))
        else:  # command acknowledgements are the sender's business; log them for the record
            log.info("%s acknowledged: %s", device_id, message.payload[:500].decode(errors="replace"))
            client.ack(message.mid, message.qos)

    def _parse_status(self, raw: bytes) -> tuple[dict | None, str | None]:
        if not raw:  # a cleared retained message
            return {"state": "unknown"}, None
        if len(raw) > self.config.max_payload_bytes:
            return None, "oversized"
        try:
            status = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, "malformed"
        return (status, None) if isinstance(status, dict) else (None, "malformed")

    def _write_loop(self) -> None:
        while not (self._stopping.is_set() and self.inbox.empty()):
            try:
                batch = [self.inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < self.config.batch_size:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list) -> None:
        reports = [item for kind, item, _ in batch if kind == "report"]
        while True:
            try:
                added = self.store.add_reports(reports)
                for kind, item, _ in batch:
                    if kind == "status":
                        self.store.set_status(*item)
                break
            except Exception:  # database down or locked: keep the batch (unacknowledged) and retry
                log.exception("storing %d reports failed; retrying in 1 s", len(reports))
                time.sleep(1)
        self.counts["stored"] += added
        self.counts["duplicates"] += len(reports) - added
        for _, _, message in batch:
            self.client.ack(message.mid, message.qos)

    def stats(self) -> dict:
        return {**self.counts, "seconds": round(time.monotonic() - self.started, 3)}

    def stop(self) -> None:
        """Store and acknowledge what arrived, then leave; later messages wait in the broker for the next run."""
        self._stopping.set()
        self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()
