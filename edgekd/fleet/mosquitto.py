"""A private mosquitto on loopback with a generated config: TLS from a generated CA, a password file, the
per-device ACL of docs/mosquitto/edgekd.conf, persistence, raised queue limits. The tests and the fleet_load
benchmark run their broker with it; it also shows, runnable, what a production config needs.

Why the limits: mosquitto's default max_queued_messages (1000) silently drops QoS 1 messages to a slow subscriber
while still acknowledging the publishers, and without `persistence true` a restart forgets queued messages."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edgekd.errors import ConfigError
from edgekd.fleet.broker import Broker, answers

COLLECTOR_USER = "collector"
ACL = f"""# The collector reads every device's topics and may send commands.
user {COLLECTOR_USER}
topic read edgekd/#
topic write edgekd/+/cmd

# Every other user is a device whose user name is its device id: it publishes only under its own prefix and
# reads only its own commands (%u is the user name).
pattern write edgekd/%u/status
pattern write edgekd/%u/report
pattern write edgekd/%u/cmd/ack
pattern read edgekd/%u/cmd
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list) -> None:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"{command[0]} failed: {result.stderr.strip()[-500:]}")


def make_certificates(folder: Path, host_ip: str = "127.0.0.1") -> dict:
    """A CA and a server certificate for `host_ip` / localhost (subjectAltName, which TLS clients check)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    _run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=edgekd test CA",
            "-keyout",
            ca_key,
            "-out",
            ca,
        ]
    )
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host_ip}", "-keyout", key, "-out", csr])
    (folder / "san.ext").write_text(f"subjectAltName=IP:{host_ip},DNS:localhost\n")
    _run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            folder / "san.ext",
            "-out",
            cert,
        ]
    )
    return {"ca": ca, "cert": cert, "key": key}


class Mosquitto:
    """`with Mosquitto(users={"pi-1": "secret"}, tls=True) as broker: broker.broker("pi-1")`."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        tls: bool = False,
        persistence: bool = True,
        port: int | None = None,
        executable: str = "mosquitto",
    ):
        self.executable = shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/sbin")
        if not self.executable:
            raise ConfigError("mosquitto is not installed (apt-get install mosquitto)")
        self.users, self.tls, self.persistence = users or {}, tls, persistence
        self.port = port or free_port()
        # Not under pytest's 0700 temp folders: mosquitto drops root for its own user, which must reach these files.
        self.folder = Path(tempfile.mkdtemp(prefix="edgekd-mosquitto-"))
        self.certificates = make_certificates(self.folder / "tls") if tls else {}
        self.config = self._write_config()
        self.process: subprocess.Popen | None = None
        self.log = self.folder / "mosquitto.log"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
            "message_size_limit 1048576",
        ]
        if self.users:
            passwords = self.folder / "passwords"
            passwords.write_text("".join(f"{user}:{password}\n" for user, password in self.users.items()))
            _run(["mosquitto_passwd", "-U", passwords])  # hash them in place
            (self.folder / "acl").write_text(ACL)
            lines += ["allow_anonymous false", f"password_file {passwords}", f"acl_file {self.folder / 'acl'}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [
                f"cafile {self.certificates['ca']}",
                f"certfile {self.certificates['cert']}",
                f"keyfile {self.certificates['key']}",
            ]
        if self.persistence:
            (self.folder / "data").mkdir()
            lines += ["persistence true", f"persistence_location {self.folder / 'data'}/", "autosave_interval 1"]
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        self._hand_over()
        return path

    def _hand_over(self) -> None:
        """Give the folder to the `mosquitto` user the broker runs as after dropping root."""
        os.chmod(self.folder, 0o755)
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            return
        if os.geteuid() == 0:
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self, timeout: float = 10.0) -> Mosquitto:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([self.executable, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", self.port, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"mosquitto did not start: {self.log.read_text()[-1000:]}")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM lets mosquitto save its persistence file; SIGKILL is a crash (up to autosave_interval lost)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        self.process = None

    def broker(self, user: str | None = None) -> Broker:
        ca = str(self.certificates["ca"]) if self.tls else None
        return Broker("127.0.0.1", self.port, self.tls, user, self.users.get(user) if user else None, ca)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
