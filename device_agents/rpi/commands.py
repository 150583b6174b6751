"""Commands a device obeys, as JSON on `edgekd/<device>/cmd`: {"id": "...", "command": NAME, ...parameters}.

    bench         runs, warmup, threads, seconds, frames, data   measure now; the ack carries the report id
    switch_model  model                                          another model of the bundle, after a health check
    capture       count                                          save frames of the source for a dataset
    stop                                                         acknowledge, publish "stopped", exit

Every command is acknowledged on `edgekd/<device>/cmd/ack` with {"id", "command", "ok", "error" or results}."""

from __future__ import annotations

import json

MAX_COMMAND_BYTES = 16 * 1024
PARAMETERS = {
    "bench": {"runs": int, "warmup": int, "threads": int, "seconds": (int, float), "frames": int, "data": str},
    "switch_model": {"model": str},
    "capture": {"count": int},
    "stop": {},
}


class CommandError(ValueError):
    def __init__(self, message: str, command_id=None, name=None):
        super().__init__(message)
        self.command_id, self.name = command_id, name


def parse_command(raw: bytes) -> dict:
    """The command as a dict, or CommandError saying what is wrong with it (and its id, when it has one)."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise CommandError(f"oversized command ({len(raw)} bytes > {MAX_COMMAND_BYTES})")
    try:
        command = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CommandError("malformed command: not JSON") from None
    if not isinstance(command, dict):
        raise CommandError("malformed command: not a JSON object")
    command_id, name = command.get("id"), command.get("command")
    if not isinstance(command_id, str) or not command_id:
        raise CommandError("field id: a non-empty string is required", name=name)
    if name not in PARAMETERS:
        raise CommandError(f"field command: unknown {name!r}; known: {', '.join(PARAMETERS)}", command_id, name)
    for key, value in command.items():
        if key in ("id", "command"):
            continue
        expected = PARAMETERS[name].get(key)
        if expected is None:
            raise CommandError(f"field {key}: not a parameter of {name}", command_id, name)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise CommandError(f"field {key}: wrong type {type(value).__name__}", command_id, name)
    for key in ("runs", "threads", "count", "frames"):
        if key in command and not 1 <= command[key] <= 100_000:
            raise CommandError(f"field {key}: must be between 1 and 100000", command_id, name)
    return command
