"""Stage outputs cached by a hash of their inputs, so a rerun or a crashed run resumes where it stopped.

A stage's key hashes its name, its settings, the keys of the stages it reads from and the edgekd version: change
the student's epochs and the student, pruning, export and bench stages run again; the teacher is reused. A stage
is done when `stage.json` (written last, atomically) holds the same key; a stage that crashed half-way has none,
and training stages then resume from their last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgekd import __version__

STAGE_FILE = "stage.json"


def stage_key(name: str, settings: dict, upstream: list[str]) -> str:
    text = json.dumps(
        {"stage": name, "settings": settings, "upstream": upstream, "edgekd": __version__}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class StageRecord:
    name: str
    key: str
    folder: Path
    result: dict  # what the stage returned: its outputs' paths and figures (JSON-serialisable)
    seconds: float
    cached: bool


def load_done(folder: Path, key: str) -> dict | None:
    record = folder / STAGE_FILE
    if not record.is_file():
        return None
    try:
        stored = json.loads(record.read_text())
    except json.JSONDecodeError:
        return None
    return stored if stored.get("key") == key else None


def run_stage(run_dir: Path, name: str, settings: dict, upstream: list[StageRecord], work) -> StageRecord:
    """`work(folder) -> dict` unless the stage already ran with the same key; a stale folder is cleared first
    unless it belongs to a crashed run of the same key (training resumes inside it)."""
    key = stage_key(name, settings, [u.key for u in upstream])
    folder = run_dir / "stages" / name
    done = load_done(folder, key)
    if done is not None:
        return StageRecord(name, key, folder, done["result"], done["seconds"], cached=True)
    marker = folder / ".key"
    if folder.exists() and (not marker.is_file() or marker.read_text() != key):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(key)
    started = time.perf_counter()
    result = work(folder)
    seconds = time.perf_counter() - started
    record = {"stage": name, "key": key, "settings": settings, "result": result, "seconds": seconds}
    tmp = folder / (STAGE_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, folder / STAGE_FILE)
    return StageRecord(name, key, folder, result, seconds, cached=False)
