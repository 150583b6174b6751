"""The zero-setup broker: amqtt (pure Python, MQTT 3.1.1) in a background thread, so a laptop demo needs no
mosquitto. Anonymous and without TLS, on loopback only. Limits (measured, see docs/fleet.md): no MQTT 5 (an ACL
denial is silent), no persistence across restarts, and it stalls at a few hundred clients: for a real fleet run
mosquitto with docs/mosquitto/edgekd.conf."""

from __future__ import annotations

import asyncio
import logging
import threading

from edgekd.errors import ConfigError
from edgekd.fleet.broker import Broker

log = logging.getLogger("edgekd.embedded")


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883):
        try:
            from amqtt.broker import Broker as AmqttBroker
        except ImportError:
            raise ConfigError(
                "no broker answers and the embedded one needs amqtt: pip install 'edgekd[fleet]', "
                "or give --broker mqtt://HOST"
            ) from None
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            # amqtt 0.12's plugin form (the older auth/topic-check keys are deprecated there)
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = AmqttBroker(config, loop=self._loop)
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)

    def start(self) -> Broker:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._broker.start(), self._loop).result(timeout=15)
        log.info("embedded amqtt broker on %s:%d (MQTT 3.1.1, anonymous, loopback)", self.host, self.port)
        return Broker(self.host, self.port, mqtt5=False)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        await self._broker.shutdown()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:  # amqtt leaves its broadcast loop running; cancel it rather than have it destroyed
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
