"""The statement registry, the per-check context and the outcome of one check."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from system.broker.conformance._wire import Closed, Packet, RawClient


@dataclass(frozen=True)
class Target:
    """A broker to check. ``username``/``password``, when set, are accepted besides anonymous
    clients, and ``denied_filter`` is a topic filter that user may not subscribe to."""

    host: str
    port: int
    name: str = ""
    username: str | None = None
    password: str | None = None
    denied_filter: str | None = None
    timeout: float = 10.0  # seconds to wait for each expected event; generous for a loaded machine
    away: float = 2.0  # how long a client with a persistent session stays offline in session checks

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Outcome:
    statement: str
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "fail"


class Fail(AssertionError):
    """The broker broke the statement; the message says how."""


class Skip(Exception):
    """The target cannot be checked for this statement (e.g. it has no credentials configured)."""


Check = Callable[["Ctx"], Awaitable[str | None]]


@dataclass(frozen=True)
class Statement:
    statement: str  # "MQTT-3.1.2-4"
    name: str  # "MQTT_3_1_2_4_clean_session_0_keeps_subscriptions": the pytest test's name
    text: str
    check: Check
    area: str = ""  # "connect", "sessions", "delivery", "retained", "keepalive", "topics", "bad-input"


STATEMENTS: list[Statement] = []
_area = [""]


def area(name: str) -> None:
    """Statements registered from now on belong to this area (a section of the suite)."""
    _area[0] = name


def statement(ref: str, slug: str, text: str) -> Callable[[Check], Check]:
    """Register a check for one normative statement of MQTT 3.1.1."""

    def register(fn: Check) -> Check:
        prefix = ref.replace("-", "_").replace(".", "_")
        STATEMENTS.append(Statement(ref, f"{prefix}_{slug}", text, fn, _area[0]))
        return fn

    return register


@dataclass
class Ctx:
    """What one check gets: the target, unique names, and clients closed for it afterwards."""

    target: Target
    rng: random.Random
    clients: list[RawClient] = field(default_factory=list)
    nonce: str = ""

    def __post_init__(self) -> None:
        self.nonce = self.nonce or f"{self.rng.getrandbits(40):010x}"

    def cid(self, name: str) -> str:
        return f"sq{self.nonce}{name}"[:23]

    def topic(self, name: str) -> str:
        return f"squall/conf/{self.nonce}/{name}"

    def own(self, packets: list[Packet]) -> list[Packet]:
        """The PUBLISHes on this check's topics: on a broker shared across checks, what stock
        amqtt pushes from other checks' retained topics on CONNECT is MQTT-3.3.1-6's failure."""
        return [p for p in packets if p.topic.startswith(self.topic(""))]

    async def open(self) -> RawClient:
        c = await RawClient.open(self.target.host, self.target.port)
        c.timeout = self.target.timeout
        self.clients.append(c)
        return c

    async def client(self, name: str, *, clean: bool = True, creds: bool = False, **kw: object) -> RawClient:
        """A connected client, failing the check unless the broker accepts it."""
        if creds:
            if self.target.username is None:
                raise Skip("target has no credentials configured")
            kw.update(username=self.target.username, password=self.target.password)
        c = await self.open()
        ack = await c.connect(self.cid(name), clean=clean, **kw)
        if ack.return_code != 0:
            raise Fail(f"CONNECT of {name} refused with return code {ack.return_code}")
        return c

    async def leave(self, c: RawClient) -> None:
        """DISCONNECT and wait until the broker has closed the connection (it has ended the session)."""
        await c.send(bytes([0xE0, 0]))
        await c.closed()
        await c.abort()

    async def alive(self) -> None:
        """Fail unless a fresh client can still connect and ping."""
        c = await self.open()
        try:
            ack = await c.connect(self.cid("alive"))
        except (Closed, TimeoutError, ConnectionError) as exc:
            raise Fail(f"broker stopped serving new clients: {exc!r}") from None
        if ack.return_code != 0 or not await c.ping():
            raise Fail("broker stopped serving new clients")
        await c.disconnect()

    async def close_all(self) -> None:
        for c in self.clients:
            try:
                await c.abort()
            except Exception:  # noqa: BLE001 - cleanup must not mask the verdict
                pass
        try:
            await asyncio.wait_for(self._clear(), self.target.timeout)
        except Exception:  # noqa: BLE001 - a broker that cannot be cleaned has given its verdict already
            pass

    async def _clear(self) -> None:
        """Leave a long-running broker as the check found it: retained messages cleared and
        persistent sessions discarded, so a rerun with the same seed (same ids and topics)
        meets nothing of this one."""
        topics = sorted(set().union(*(c.retained_topics for c in self.clients)))
        ids = sorted(set().union(*(c.persistent_ids for c in self.clients)))
        if not topics and not ids:
            return
        self.clients = []
        for cid in ids:  # CleanSession=1 discards the stored session [MQTT-3.1.2-6]
            c = await self.open()
            await c.connect(cid)
            await c.disconnect()
        if topics:
            c = await self.open()
            await c.connect(self.cid("clear"))
            for i, topic in enumerate(topics, 1):
                await c.publish(topic, b"", qos=1, retain=True, pid=i)  # a zero-byte retained PUBLISH clears it
            await c.disconnect()
        for c in self.clients:
            await c.abort()


async def run_check(st: Statement, target: Target, rng: random.Random | None = None) -> Outcome:
    """Run one check against ``target`` and say what happened; never raises for a broker's fault."""
    ctx = Ctx(target, rng or random.Random())
    try:
        detail = await asyncio.wait_for(st.check(ctx), 12 * target.timeout)
        return Outcome(st.statement, st.name, "pass", detail or "")
    except Skip as exc:
        return Outcome(st.statement, st.name, "skip", str(exc))
    except Fail as exc:
        return Outcome(st.statement, st.name, "fail", str(exc))
    except Closed as exc:
        return Outcome(st.statement, st.name, "fail", f"unexpected close: {exc}")
    except TimeoutError:
        return Outcome(st.statement, st.name, "fail", "timed out waiting for the broker")
    except (ConnectionError, OSError) as exc:
        return Outcome(st.statement, st.name, "fail", f"connection error: {exc!r}")
    finally:
        await ctx.close_all()
