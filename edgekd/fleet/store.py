"""Where the collector keeps reports: SQLite by default (one file, nothing to run), PostgreSQL when given a
`postgresql://` URL (for fleets that outgrow one file). Reports are stored idempotently by report id: a report the
broker delivers twice (QoS 1 is at-least-once) is stored once. Each row keeps the whole report as JSON beside the
columns that `fleet reports` filters and prints."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from edgekd.errors import ConfigError

COLUMNS = (
    "report_id",
    "device_id",
    "device_kind",
    "model_file",
    "model_sha256",
    "status",
    "runtime",
    "started_at",
    "finished_at",
    "stored_at",
    "p50_ms",
    "p95_ms",
    "fps",
    "peak_rss_bytes",
    "accuracy",
    "body",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    report_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, device_kind TEXT, model_file TEXT, model_sha256 TEXT,
    status TEXT NOT NULL, runtime TEXT, started_at TEXT, finished_at TEXT, stored_at DOUBLE PRECISION,
    p50_ms DOUBLE PRECISION, p95_ms DOUBLE PRECISION, fps DOUBLE PRECISION, peak_rss_bytes BIGINT,
    accuracy DOUBLE PRECISION, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reports_device ON reports (device_id, model_file);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, state TEXT, model TEXT, last_seen DOUBLE PRECISION, status TEXT);
"""


def report_row(report: dict, stored_at: float) -> tuple:
    latency = report.get("latency") or {}
    runtime = report.get("runtime")
    accuracy = report.get("accuracy")
    return (
        report["report_id"],
        report["device"]["id"],
        report["device"]["kind"],
        report["model"]["file"],
        report["model"].get("sha256"),
        report["status"],
        f"{runtime['name']} {runtime['version']}".strip() if runtime else None,
        report["started_at"],
        report["finished_at"],
        stored_at,
        latency.get("p50_ms"),
        latency.get("p95_ms"),
        latency.get("fps"),
        (report.get("memory") or {}).get("peak_rss_bytes"),
        accuracy["metrics"].get(accuracy["primary"]) if accuracy else None,
        json.dumps(report, separators=(",", ":")),
    )


class Store:
    """The SQL both databases share; subclasses give the connection and the parameter style."""

    mark = "?"

    def __init__(self, connection):
        self.db = connection

    def _transaction(self):
        return self.db  # sqlite3: commits at the end of the block, rolls back on an error

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def add_reports(self, reports: list[dict]) -> int:
        """Store a batch in one transaction; returns how many were new (the rest were already stored)."""
        if not reports:
            return 0
        now = time.time()
        rows = [report_row(r, now) for r in reports]
        marks = ", ".join("?" * len(COLUMNS))
        insert = f"INSERT INTO reports ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (report_id) DO NOTHING"
        with self._transaction():
            cursor = self.db.cursor()
            cursor.executemany(self._sql(insert), rows)
            added = cursor.rowcount  # conflicting (already stored) rows count 0
            last = {}
            for report in reports:
                last[report["device"]["id"]] = report["model"]["file"]
            self._touch(cursor, [(device, model, now) for device, model in last.items()])
        return added

    def _touch(self, cursor, seen: list[tuple]) -> None:
        cursor.executemany(
            self._sql(
                "INSERT INTO devices (device_id, model, last_seen) VALUES (?, ?, ?) ON CONFLICT (device_id) "
                "DO UPDATE SET model = excluded.model, last_seen = excluded.last_seen"
            ),
            seen,
        )

    def set_status(self, device_id: str, status: dict) -> None:
        """A device's retained status message (state, model, ...) as the collector last received it."""
        with self._transaction():
            self.db.cursor().execute(
                self._sql(
                    "INSERT INTO devices (device_id, state, model, last_seen, status) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen, "
                    "status = excluded.status, model = COALESCE(excluded.model, devices.model)"
                ),
                (device_id, status.get("state"), status.get("model"), time.time(), json.dumps(status)),
            )

    def count(self) -> int:
        cursor = self.db.cursor()
        cursor.execute("SELECT COUNT(*) FROM reports")
        return cursor.fetchone()[0]

    def devices(self) -> list[dict]:
        cursor = self.db.cursor()
        cursor.execute(
            "SELECT d.device_id, d.state, d.model, d.last_seen, d.status, COUNT(r.report_id) FROM devices d "
            "LEFT JOIN reports r ON r.device_id = d.device_id GROUP BY d.device_id, d.state, d.model, d.last_seen, "
            "d.status ORDER BY d.device_id"
        )
        names = ("device_id", "state", "model", "last_seen", "status", "reports")
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["status"] = json.loads(row["status"]) if row["status"] else {}
        return rows

    def reports(self, device: str | None = None, model: str | None = None) -> list[dict]:
        """Rows (without the JSON body, which is under "report"), oldest first."""
        where, params = [], []
        for column, value in (("device_id", device), ("model_file", model)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        query = f"SELECT {', '.join(COLUMNS)} FROM reports"
        query += f" WHERE {' AND '.join(where)}" if where else ""
        cursor = self.db.cursor()
        cursor.execute(self._sql(query + " ORDER BY finished_at, report_id"), params)
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(COLUMNS, values, strict=True))
            row["report"] = json.loads(row.pop("body"))
            rows.append(row)
        return rows

    def close(self) -> None:
        self.db.close()


class SQLiteStore(Store):
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The collector acknowledges a report to the broker only after its transaction commits: FULL makes that
        # commit survive a power cut, WAL keeps readers (`fleet status`) from blocking the writer.
        try:
            db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise ConfigError(f"{path}: cannot open it as the SQLite store ({error})") from None
        super().__init__(db)


class PostgresStore(Store):
    mark = "%s"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// store needs psycopg: pip install 'edgekd[fleet]'") from None
        try:
            db = psycopg.connect(url, autocommit=True)  # transactions are explicit blocks
        except psycopg.OperationalError as error:
            raise ConfigError(f"cannot open the PostgreSQL store: {error}") from None
        with db.transaction():
            db.execute(_SCHEMA)
        super().__init__(db)

    def _transaction(self):
        return self.db.transaction()


def open_store(where: str | Path, must_exist: bool = False) -> Store:
    """`postgresql://...` (or postgres://) -> PostgreSQL; anything else is a SQLite file path, which readers
    (`must_exist`) do not create."""
    text = str(where)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text)
    if must_exist and not Path(text).is_file():
        raise ConfigError(f"{text}: no report store here; `edgekd collect --db {text}` creates it")
    return SQLiteStore(text)
