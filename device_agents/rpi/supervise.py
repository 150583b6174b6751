"""Where systemd is not running: keep the agent alive as systemd would (Restart=on-failure, back-off), with the
environment of ROOT/agent.env. `python -m device_agents.rpi.supervise ROOT`; SIGTERM stops the agent and exits.
ROOT/supervise.state says `running <restarts>`, `restarting <restarts>`, `failed` (it kept crashing at start) or
`stopped`; the agent writes ROOT/agent.ready once it has checked its bundle and met the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FAST_CRASH_S = 10  # an agent that dies sooner than this counts as crashing at start
MAX_FAST_CRASHES = 3


def read_env(path: Path) -> dict:
    env = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.strip().startswith("#"):
                env[key.strip()] = value.strip()
    return env


def main(root: Path) -> int:
    state = root / "supervise.state"
    child: list[subprocess.Popen] = []
    stopping = []

    def on_term(*_):
        stopping.append(True)
        if child:
            child[0].terminate()

    signal.signal(signal.SIGTERM, on_term)
    command = [sys.executable, "-m", "device_agents.rpi.agent", "--bundle", str(root / "current")]
    command += ["--spool", str(root / "spool")]
    ready = root / "agent.ready"
    environment = {**os.environ, **read_env(root / "agent.env"), "EDGEKD_READY_FILE": str(ready)}
    fast_crashes, delay, restarts = 0, 1.0, 0
    while not stopping:
        ready.unlink(missing_ok=True)
        state.write_text(f"running {restarts}")
        started = time.monotonic()
        child[:] = [subprocess.Popen(command, env=environment)]
        code = child[0].wait()
        if stopping or code == 0:
            break
        state.write_text(f"restarting {restarts + 1}")
        fast_crashes = fast_crashes + 1 if time.monotonic() - started < FAST_CRASH_S else 0
        if fast_crashes >= MAX_FAST_CRASHES:
            state.write_text("failed")
            print(f"supervise: the agent failed {fast_crashes} times at start (exit {code}); giving up", flush=True)
            return 1
        print(f"supervise: agent exited with {code}; restarting in {delay:g} s", flush=True)
        time.sleep(delay)
        delay, restarts = min(delay * 2, 30), restarts + 1
    state.write_text("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
