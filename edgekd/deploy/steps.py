"""The deploy plan both Linux targets share: copy the bundle, prepare Python, write the agent's environment, verify
and swap the bundle on the device, (re)start the agent, and roll back if the new one does not stay up.

The device keeps the previous bundle: a bundle that fails its sha256 or health check never becomes `current`, and
one whose agent dies at start is replaced by `previous` again."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekd.deploy.bundle import bundle_id
from edgekd.deploy.runner import DeployError, LocalRunner
from edgekd.fleet.broker import Broker

SERVICE = "-m device_agents.rpi.service"


@dataclass
class Plan:
    runner: LocalRunner
    root: str  # on the device; relative paths are under the login's home
    bundle: Path  # built on this machine
    python: str  # the device's interpreter that runs the agent
    broker: Broker | None = None
    device_id: str | None = None
    prepare: list[tuple[str, str]] = field(default_factory=list)  # (what, script) before the bundle is activated
    copies: list[tuple[Path, str]] = field(default_factory=list)  # extra folders -> paths relative to root
    alive_seconds: float = 3.0

    def environment(self) -> tuple[str, str]:
        """agent.env as written (0600) and as printed (password masked)."""
        lines, shown = [], []
        if self.broker:
            ca = f"{self.root}/ca/{Path(self.broker.ca_file).name}" if self.broker.ca_file else None
            lines.append(f"EDGEKD_BROKER={self.broker.url()}")
            shown.append(f"EDGEKD_BROKER={self.broker.redacted()}")
            if ca:
                lines.append(f"EDGEKD_MQTT_CA={ca}")
                shown.append(lines[-1])
        if self.device_id:
            lines.append(f"EDGEKD_DEVICE_ID={self.device_id}")
            shown.append(lines[-1])
        return "\n".join(lines) + "\n", "\n".join(shown)


def run_plan(plan: Plan, dry_run: bool, say: Callable[[str], None]) -> str:
    """Carry out (or with `dry_run` print) every step; returns the activated bundle id."""
    ident = bundle_id(plan.bundle)
    say(f"bundle {ident} ({plan.bundle}) -> {plan.runner.where}:{plan.root}")
    create = f"mkdir -p {shlex.quote(plan.root)}/bundles && chmod 700 {shlex.quote(plan.root)}"
    say(f"[bold]create {plan.root} (mode 0700)[/]" + (f"\n    $ {create}" if dry_run else ""))
    if not dry_run:  # absolute from here on: the unit and agent.env must not depend on a working directory
        plan.root = plan.runner.run(f"{create} && cd {shlex.quote(plan.root)} && pwd").splitlines()[-1]
    root = plan.root
    python = plan.python.replace("@ROOT@", root)
    quoted = shlex.quote(root)
    service = f"{shlex.quote(python)} {SERVICE}"
    env_text, env_shown = plan.environment()

    def step(what: str, script: str | None = None, stdin: bytes | None = None, shown: str | None = None) -> str:
        say(f"[bold]{what}[/]" + (f"\n    $ {shown or script}" if script and dry_run else ""))
        if dry_run or script is None:
            return ""
        output = plan.runner.run(script, stdin=stdin)
        if output:
            say(output)
        return output

    for folder, relative in [(plan.bundle, f"bundles/{ident}"), *plan.copies]:
        destination = f"{root}/{relative}"
        say(f"[bold]copy {folder} -> {destination}[/]" + (" (tar over the runner)" if dry_run else ""))
        if not dry_run:
            plan.runner.copy(folder, destination)
    for what, script in plan.prepare:
        step(what, script.replace("@ROOT@", quoted))
    try:
        step("verify sha256, health-check, swap in the bundle", f"{service} activate {quoted} {ident}")
    except DeployError as error:
        raise DeployError(f"bundle refused, the previous one stays active: {error}") from None
    step(
        "write the agent environment (0600)",
        f"umask 077 && cat > {quoted}/agent.env",
        stdin=env_text.encode(),
        shown=f"umask 077 && cat > {root}/agent.env  <<< {env_shown!r}",
    )
    step("(re)start the agent", f"{service} start {quoted}")
    try:
        wait = f"{plan.alive_seconds:g}"
        step(f"check the agent is still up after {wait} s", f"{service} alive {quoted} --seconds {wait}")
    except DeployError as error:
        say(f"[red]the new agent did not stay up[/]: {error}; rolling back")
        plan.runner.run(f"{service} rollback {quoted} && {service} start {quoted}")
        raise DeployError(f"the agent failed with bundle {ident}; rolled back to the previous bundle") from None
    return ident
