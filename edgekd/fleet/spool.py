"""Store-and-forward: every report is written to a spool folder before it is published, and its file is deleted
only when the broker's PUBACK arrives. A broker outage or an agent restart therefore loses nothing; a report sent
twice (published, then the agent died before the PUBACK) is harmless because the collector stores by report id."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path

log = logging.getLogger("edgekd.spool")
MAX_IN_FLIGHT = 100  # published and not yet acknowledged; the rest wait on disk


class Spool:
    """A folder of `<time>-<report id>.json` files, oldest first; `rejected/` keeps what the broker refused."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def put(self, report: dict) -> Path:
        path = self.folder / f"{time.time_ns():020d}-{report['report_id']}.json"
        partial = path.with_suffix(".partial")
        with open(partial, "w") as handle:
            json.dump(report, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())  # survives a power cut, not only a crash
        partial.replace(path)
        return path

    def pending(self) -> list[Path]:
        return sorted(self.folder.glob("*.json"))

    def reject(self, path: Path) -> None:
        (self.folder / "rejected").mkdir(exist_ok=True)
        path.replace(self.folder / "rejected" / path.name)


class SpoolSender:
    """Publishes spooled reports at QoS 1 and deletes each file on its PUBACK. Install `on_publish` as the client's
    callback. PUBACKs arrive on paho's network thread while it holds its own lock, so they are only queued there and
    matched here (taking our lock in the callback could deadlock with `publish`)."""

    def __init__(self, spool: Spool, client, topic: str):
        self.spool, self.client, self.topic = spool, client, topic
        self.in_flight: dict[int, Path] = {}
        self.acks: queue.Queue = queue.Queue()
        self.early: dict[int, int] = {}  # PUBACKs that came before publish() returned their mid
        self.sent = self.refused = 0

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acks.put((mid, reason_code.value if hasattr(reason_code, "value") else int(reason_code)))

    def _settle(self, mid: int, code: int) -> None:
        path = self.in_flight.pop(mid, None)
        if path is None:
            self.early[mid] = code
            return
        if code < 128:
            path.unlink(missing_ok=True)
            self.sent += 1
        else:  # e.g. 135 not authorized: retrying will not help; keep it for a human
            log.error("broker refused %s (reason code %d); moved to %s/rejected", path.name, code, self.spool.folder)
            self.spool.reject(path)
            self.refused += 1

    def pump(self, wait: float = 0.0) -> int:
        """Settle arrived PUBACKs, publish what is pending; returns how many files remain unacknowledged."""
        try:
            while True:
                self._settle(*self.acks.get(timeout=wait) if wait else self.acks.get_nowait())
                wait = 0.0
        except queue.Empty:
            pass
        busy = set(self.in_flight.values())
        for path in self.spool.pending():
            if len(self.in_flight) >= MAX_IN_FLIGHT:
                break
            if path in busy:
                continue
            try:
                payload = path.read_bytes()
            except FileNotFoundError:
                continue
            info = self.client.publish(self.topic, payload, qos=1)  # queued by paho while offline
            self.in_flight[info.mid] = path
            if info.mid in self.early:
                self._settle(info.mid, self.early.pop(info.mid))
        return len(self.spool.pending())

    def drain(self, timeout: float) -> bool:
        """Pump until the spool is empty or `timeout` passes; True if empty."""
        deadline = time.monotonic() + timeout
        while self.pump(wait=0.05):
            if time.monotonic() > deadline:
                return False
        return True


class SenderThread(threading.Thread):
    """Pumps the spool in the background, so reports flow while the agent measures."""

    def __init__(self, sender: SpoolSender):
        super().__init__(daemon=True, name="spool-sender")
        self.sender, self.stopping = sender, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sender.pump(wait=0.2)
            except Exception:  # a broken file must not stop the rest from flowing
                log.exception("spool sender")
                time.sleep(1)
