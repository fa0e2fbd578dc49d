"""Start, stop and restart an MQTT broker (amqtt) inside the current event loop.

Two flavors: ``"squall"`` (default) is amqtt with squall's MQTT 3.1.1 fixes
(system/broker/_fixes.py lists each fix and its statement); ``"amqtt"`` is stock amqtt 0.12.1,
kept selectable so the harness can show where it breaks the spec.

What survives ``restart()``: on the squall flavor, retained messages and every CleanSession=0
session (its subscriptions, the QoS 1/2 messages queued for it, and its unacknowledged
outgoing messages, re-sent with DUP=1 when the client comes back). Clean sessions end with
their connections, as they must. The state lives in this process only: it does not survive the
process. Stock amqtt keeps nothing across a restart (its ``start()`` clears everything).

Anonymous clients are allowed by default. ``users`` adds username/password logins (wrong
password: CONNACK refused); ``allow_anonymous=False`` requires them.
``observer`` gets every packet on the wire as a dict (system/broker/_tap.py lists them). ``acl`` maps a username
(``"anonymous"`` for clients without one, ``"*"`` for everyone not listed) to the topic
patterns it may subscribe and publish to; a denied subscription gets SUBACK 0x80. ``deny`` maps
usernames likewise to patterns they may not subscribe to, publish to or receive.

Limits of the squall flavor: a packet over 16 MiB closes its connection (MQTT allows 256 MiB;
the limit keeps one client from filling memory), and a connection that sends no CONNECT within
30 s is closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from amqtt.broker import Broker

from system.broker._fixes import BrokerState, SquallBroker
from system.broker._tap import tap

Flavor = Literal["squall", "amqtt"]
FLAVORS: tuple[str, ...] = ("squall", "amqtt")


class EmbeddedBroker:
    """An MQTT broker on (host, port), anonymous by default.

    ``port=0`` picks a free port; read it back from ``.port`` after ``start()`` (a restart
    keeps it).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        flavor: Flavor = "squall",
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool = True,
        acl: Mapping[str, Sequence[str]] | None = None,
        deny: Mapping[str, Sequence[str]] | None = None,
        observer: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"broker flavor must be one of {', '.join(FLAVORS)} (got {flavor!r})")
        if not allow_anonymous and not users:
            raise ValueError("allow_anonymous=False needs users={name: password}, or nobody can connect")
        self.host = host
        self.port = port
        self.flavor = flavor
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.acl = {k: list(v) for k, v in acl.items()} if acl is not None else None
        self.deny = {k: list(v) for k, v in (deny or {}).items()}
        self.observer = observer
        self._broker: Broker | None = None
        self._saved: BrokerState | None = None

    def _config(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": self.allow_anonymous},
        }
        if self.users:
            plugins["system.broker._plugins.PasswordAuth"] = {"users": self.users}
        if self.acl is not None or self.deny:
            plugins["system.broker._plugins.TopicAcl"] = {"acl": self.acl, "deny": self.deny}
        return {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}, "plugins": plugins}

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        cls = SquallBroker if self.flavor == "squall" else Broker
        broker = cls(self._config())
        if self.observer is not None:
            tap(broker, self.observer)
        await broker.start()
        if self.port == 0:
            server = broker._servers["default"].instance  # noqa: SLF001 - amqtt exposes no getter
            self.port = server.sockets[0].getsockname()[1]
        if isinstance(broker, SquallBroker) and self._saved is not None:
            broker.import_state(self._saved)
        self._saved = None
        self._broker = broker

    async def stop(self) -> None:
        """Stop serving; on the squall flavor remember what a ``restart()`` should bring back."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        if isinstance(broker, SquallBroker):
            await broker.quiesce()
            self._saved = broker.export_state()
        else:
            self._saved = None
        await broker.shutdown()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def forget(self) -> None:
        """Drop the state a stopped broker would carry into its next start."""
        self._saved = None

    def crashed(self, *, durable: bool) -> None:
        """The process running this broker died without ``stop()`` (a simulated host crash).

        The dead instance is dropped; with ``durable`` its retained messages and persistent
        sessions are kept for the next ``start()``, as a broker with durable storage would find
        them on disk (squall flavor; stock amqtt keeps nothing). A no-op before the first start."""
        dead, self._broker = self._broker, None
        if dead is None:
            return
        self._saved = dead.export_state() if durable and isinstance(dead, SquallBroker) else None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self.forget()
