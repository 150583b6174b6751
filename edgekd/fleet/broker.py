"""Where the broker is and how to log in: `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, with a CA
file for a private CA). The password may instead come from EDGEKD_MQTT_PASSWORD, which keeps it out of process
lists and shell history. `redacted()` is the only form that may be printed or logged."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from edgekd.errors import ConfigError

PASSWORD_ENV = "EDGEKD_MQTT_PASSWORD"
SCHEMES = {"mqtt": (1883, False), "mqtts": (8883, True)}


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    mqtt5: bool = True  # the embedded amqtt broker speaks 3.1.1 only

    def redacted(self) -> str:
        user = ""
        if self.username:
            user = f"{self.username}:***@" if self.password else f"{self.username}@"
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def url(self) -> str:
        """The full URL, password included: for the device's 0600 environment file, never for a log."""
        user = self.username or ""
        if user and self.password:
            user += f":{self.password}"
        return f"{'mqtts' if self.tls else 'mqtt'}://{user + '@' if user else ''}{self.host}:{self.port}"

    def __repr__(self) -> str:  # a dataclass repr would print the password
        return f"Broker({self.redacted()})"

    __str__ = redacted


def parse_broker(url: str, ca_file: str | None = None) -> Broker:
    """A Broker from a URL; ConfigError naming what is wrong (never echoing the password)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"broker URL: scheme must be mqtt:// or mqtts://, got {parts.scheme}://")
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as error:
        raise ConfigError(f"broker URL: bad port ({error})") from None
    if not parts.hostname:
        raise ConfigError("broker URL: no host name")
    if ca_file and not os.path.isfile(ca_file):
        raise ConfigError(f"{ca_file}: CA file not found")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV) if username else None
    return Broker(parts.hostname, port, tls, username, password, ca_file)


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
