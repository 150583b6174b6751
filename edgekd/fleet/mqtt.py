"""paho-mqtt 2.x clients as the fleet uses them, and the topic layout.

One prefix per device, so that a broker ACL can confine each device to its own topics:
`edgekd/<device>/status` (retained; the Last Will says offline), `edgekd/<device>/report`, `edgekd/<device>/cmd`,
`edgekd/<device>/cmd/ack`. Clients speak MQTT 5 (a publish denied by an ACL then gets reason code 135 instead of a
silent PUBACK) and keep a persistent session (clean_start=False + a session expiry), so that QoS 1 messages sent
while a subscriber is away wait for it in a broker with `persistence true`.
"""

from __future__ import annotations

import json
import re
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgekd.errors import EdgeKDError
from edgekd.fleet.broker import Broker

PREFIX = "edgekd"
SESSION_EXPIRY_S = 7 * 24 * 3600  # a device or collector may be away for a week without losing queued messages
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # no MQTT wildcards or separators in a topic level


class BrokerError(EdgeKDError):
    """The broker refused us or could not be reached."""


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.match(device_id or ""):
        raise EdgeKDError(f"device id {device_id!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return device_id


def topic(device_id: str, kind: str) -> str:
    """kind: status, report, cmd or cmd/ack."""
    return f"{PREFIX}/{device_id}/{kind}"


def parse_topic(name: str) -> tuple[str, str] | None:
    """`edgekd/pi-3/cmd/ack` -> ("pi-3", "cmd/ack"); None for topics outside the layout."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] != PREFIX or parts[2] not in ("status", "report", "cmd", "cmd/ack"):
        return None
    return parts[1], parts[2]


def make_client(broker: Broker, client_id: str, *, persistent: bool = True, manual_ack: bool = False) -> mqtt.Client:
    """A configured, not yet connected client that reconnects by itself (1-4 s back-off)."""
    protocol = mqtt.MQTTv5 if broker.mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if broker.mqtt5 else not persistent,
        manual_ack=manual_ack,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(1, 4)
    client.max_queued_messages_set(0)  # unbounded: the spool bounds what is in flight
    return client


def connect(
    client: mqtt.Client,
    broker: Broker,
    *,
    persistent: bool = True,
    timeout: float = 10.0,
    on_connected=None,
    background: bool = False,
) -> None:
    """Connect and start the network thread; BrokerError if the broker refuses (bad password) or does not answer.
    `on_connected(client)` runs on every (re)connection, from the network thread. With `background`, a broker that
    cannot be reached yet is retried in the background instead."""
    connected, refused = threading.Event(), []

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            refused.append(str(reason_code))
        elif on_connected:  # on every (re)connection: subscribe, announce
            on_connected(client)
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=30, **_session(broker, persistent))
    except (OSError, ssl.SSLError) as error:
        if not background:
            raise BrokerError(f"cannot reach the broker at {broker.redacted()}: {error}") from None
        # Offline start (a device boots before the network or the broker): paho keeps trying by itself.
        client.connect_async(broker.host, broker.port, keepalive=30, **_session(broker, persistent))
        client.loop_start()
        return
    client.loop_start()
    if not connected.wait(timeout) or refused:
        client.loop_stop()
        why = refused[0] if refused else f"no answer within {timeout:g} s"
        raise BrokerError(f"broker {broker.redacted()} refused the connection: {why}")


def _session(broker: Broker, persistent: bool) -> dict:
    if not broker.mqtt5:
        return {}
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
    return {"clean_start": not persistent, "properties": properties}


def as_json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
