"""Links between hosts: how long a segment takes, and where faults get their hands on it.

This is the seam between the network model (`_network`) and the fault layer: every
segment put on the wire goes through `Links.transmit` (toxics act here), every arrival
through `Links.intercept` (partitions and dead hosts act here).

- Latency: base latency plus seeded jitter per segment, order kept; arrivals land on a grid
  of `tick` seconds, as interrupt coalescing batches them on a real host.
- Toxics: attached to a target, either a host pair ``"a<->b"`` or a listener
  ``"host:port"``; ``upstream`` is client to server. Added, updated and removed while
  connections are open, and applied to them.
- Partitions: a segment arriving across a partition is held (in order) until the partition
  heals. A connection whose bytes are held, or unacknowledged by a crashed host, for longer
  than the TCP user timeout is reset on both ends, as real TCP eventually does.
- Down targets (Toxiproxy's ``enabled=false``): connections closed, new ones refused.
"""

from __future__ import annotations

import errno
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sim._toxic_pipe import ToxicState
from sim.errors import BadInput
from sim.faults.toxics import Toxic

if TYPE_CHECKING:
    from sim._network import Endpoint, Network, _Connection, _Pipe, _Segment
    from sim._world import Host, World

_DATA, _EOF, _RST = 0, 1, 2


def parse_target(target: str) -> tuple[str, ...]:
    """``"a<->b"`` -> ("link", a, b) with a <= b; ``"host:port"`` -> ("listener", host, port)."""
    if "<->" in target:
        a, b = (p.strip() for p in target.split("<->", 1))
        if not a or not b:
            raise BadInput(f"fault target {target!r}: a link is written 'hostA<->hostB'")
        return ("link", *sorted((a, b)))
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BadInput(f"fault target {target!r}: write 'host:port' for a listener or 'hostA<->hostB' for a link")
    return ("listener", host, port)


class _Gate:
    """Segments of one pipe held back by a partition or a dead peer, in arrival order."""

    __slots__ = ("held", "since", "releasing")

    def __init__(self) -> None:
        self.held: deque[_Segment] = deque()
        self.since = 0.0
        self.releasing = False


class Links:
    def __init__(self, world: "World", latency: float, jitter: float, local_latency: float, connect_timeout: float, tick: float, user_timeout: float = 30.0) -> None:
        self.world = world
        self.latency = latency
        self.jitter = jitter
        self.local_latency = local_latency
        self.connect_timeout = connect_timeout
        self.user_timeout = user_timeout
        self.tick = tick
        self._rng = world.streams("net.links")
        self._toxics: dict[tuple[str, ...], dict[str, Toxic]] = {}
        self._blocked: set[tuple[str, str]] = set()  # (src host, dst host) that cannot talk
        self._down: set[tuple[str, ...]] = set()
        self._held_syns: list[tuple[Any, ...]] = []
        self._gates: dict[Any, _Gate] = {}

    # -- latency ---------------------------------------------------------------------------
    def one_way(self, src: "Host", dst: "Host", rng: Any = None) -> float:
        if src is dst:
            return self.local_latency
        if self.jitter:
            return self.latency + (rng or self._rng).random() * self.jitter
        return self.latency

    def on_grid(self, t: float) -> float:
        tick = self.tick
        return math.ceil(t / tick - 1e-6) * tick if tick else t

    # -- connection set-up -----------------------------------------------------------------------
    def syn(self, net: "Network", client: "Endpoint", target: "Host", port: int) -> None:
        self.world.after(self.one_way(client.host, target), self._syn_arrives, net, client, target, port)

    def _syn_arrives(self, net: "Network", client: "Endpoint", target: "Host", port: int) -> None:
        if (client.host.name, target.name) in self._blocked:
            self._held_syns.append((net, client, target, port))
            self.world.after(self.connect_timeout, net.timed_out, client)
            return
        if not target.up:
            self.world.after(self.connect_timeout, net.timed_out, client)
            return
        if self._is_down(client.host.name, target.name, port):
            self.world.trace.add(self.world.env._now, "refused", client.conn.id, f"{target.name}:{port} down")
            self.reply(net, client.host, target, lambda: net._refuse(client))
            return
        net.deliver_syn(client, target, port)

    def reply(self, net: "Network", to: "Host", frm: "Host", fn: Callable[[], None]) -> None:
        self.world.after(self.one_way(frm, to), fn)

    def attach(self, net: "Network", conn: "_Connection") -> None:
        """A new connection: attach every toxic whose target covers it."""
        for key, toxics in self._toxics.items():
            if self._covers(key, conn):
                for toxic in toxics.values():
                    self._attach_toxic(conn, toxic)

    # -- toxics ----------------------------------------------------------------------------------
    def _covers(self, key: tuple[str, ...], conn: "_Connection") -> bool:
        client, server = conn.client.host.name, conn.server.host.name
        if key[0] == "link":
            return tuple(sorted((client, server))) == key[1:]
        return key[1] == server and key[2] == str(conn.port)

    def _pipe_for(self, conn: "_Connection", stream: str) -> "_Pipe":
        return conn.up if stream == "upstream" else conn.down

    def _attach_toxic(self, conn: "_Connection", toxic: Toxic) -> None:
        pipe = self._pipe_for(conn, toxic.direction)
        if pipe.toxics is None:
            pipe.toxics = []
        active = toxic.applies(pipe.world.streams(f"toxicity:{conn.id}:{toxic.name}"))
        pipe.toxics.append(ToxicState(toxic, pipe, active, lambda how, why, c=conn: self.sever(c, how, why)))

    def _live_conns(self) -> list["_Connection"]:
        seen: dict[int, _Connection] = {}
        for ep in self.world.net.all_endpoints():
            if getattr(ep.conn, "up", None) is not None:
                seen.setdefault(ep.conn.id, ep.conn)
        return [seen[k] for k in sorted(seen)]

    def add_toxic(self, target: str, toxic: Toxic) -> Toxic:
        key = parse_target(target)
        toxics = self._toxics.setdefault(key, {})
        if toxic.name in toxics:
            raise BadInput(f"toxic {toxic.name!r} already exists on {target}: update or remove it first")
        toxics[toxic.name] = toxic
        self.world.trace.add(self.world.env._now, "fault", 0, f"toxic+ {target} {toxic.name} {toxic.to_json()}")
        for conn in self._live_conns():
            if self._covers(key, conn):
                self._attach_toxic(conn, toxic)
        return toxic

    def update_toxic(self, target: str, name: str, patch: dict[str, Any]) -> Toxic:
        key = parse_target(target)
        old = self._toxics.get(key, {}).get(name)
        if old is None:
            raise BadInput(f"toxic {name!r} not found on {target}")
        new = old.updated(patch)
        self._toxics[key][name] = new
        self.world.trace.add(self.world.env._now, "fault", 0, f"toxic~ {target} {name} {new.to_json()}")
        for conn in self._live_conns():
            for pipe in (conn.up, conn.down):
                for state in pipe.toxics or ():
                    if state.name == name and self._covers(key, conn):
                        state.update(new)
                        if state.parked:  # a stopped bandwidth toxic lets go of what it held
                            self._release_held(pipe, state.take_parked())
        return new

    def remove_toxic(self, target: str, name: str) -> None:
        key = parse_target(target)
        if self._toxics.get(key, {}).pop(name, None) is None:
            raise BadInput(f"toxic {name!r} not found on {target}")
        self.world.trace.add(self.world.env._now, "fault", 0, f"toxic- {target} {name}")
        for conn in self._live_conns():
            if not self._covers(key, conn):
                continue
            for pipe in (conn.up, conn.down):
                if pipe.toxics:
                    gone = [s for s in pipe.toxics if s.name == name]
                    pipe.toxics = [s for s in pipe.toxics if s.name != name] or None
                    parked = []
                    for state in gone:
                        state.remove()
                        parked += state.take_parked()
                    if gone:
                        self._release_held(pipe, parked)

    def toxics(self, target: str) -> list[Toxic]:
        return list(self._toxics.get(parse_target(target), {}).values())

    # -- down targets ------------------------------------------------------------------------------
    def _is_down(self, client: str, server: str, port: int) -> bool:
        return ("listener", server, str(port)) in self._down or ("link", *sorted((client, server))) in self._down

    def set_enabled(self, target: str, enabled: bool) -> None:
        key = parse_target(target)
        if enabled:
            self._down.discard(key)
            self.world.trace.add(self.world.env._now, "fault", 0, f"up {target}")
            return
        self._down.add(key)
        self.world.trace.add(self.world.env._now, "fault", 0, f"down {target}")
        for conn in self._live_conns():
            if self._covers(key, conn):
                self.sever(conn, "fin", f"{target} disabled")

    # -- severing a connection from the middle -----------------------------------------------------
    def sever(self, conn: "_Connection", how: str, why: str) -> None:
        """Close a connection from the network: FIN (or RST) to both ends, after what is in flight."""
        if getattr(conn, "severed", False):
            return
        conn.severed = True  # type: ignore[attr-defined]
        self.world.trace.add(self.world.env._now, "sever", conn.id, f"{how} {why}")
        kind = _EOF if how == "fin" else _RST
        for pipe in (conn.up, conn.down):
            seg = pipe.make(kind)
            pipe.schedule(seg, self.on_grid(self.world.env._now + self.one_way(pipe.src.host, pipe.dst.host, pipe.rng)))

    # -- the wire ----------------------------------------------------------------------------------------
    def transmit(self, pipe: "_Pipe", seg: "_Segment") -> None:
        conn = pipe.conn
        if getattr(conn, "severed", False):
            # The middlebox that closed this connection answers anything more with a reset.
            if seg.kind == _DATA:
                back = pipe.dst.out
                if back is not None:
                    rst = back.make(_RST)
                    back.schedule(rst, self.on_grid(seg.sent_at + 2 * self.one_way(pipe.src.host, pipe.dst.host, pipe.rng)))
            return
        t = seg.sent_at + self.one_way(pipe.src.host, pipe.dst.host, pipe.rng)
        if pipe.toxics and seg.kind <= _EOF:  # toxics act on the byte stream, not on set-up or resets
            # No coalescing into a segment a toxic has already cut, trimmed or timed.
            pipe._last = None
            self._through_toxics(pipe, [(t, seg)])
            return
        pipe.schedule(seg, self.on_grid(t))

    def _through_toxics(self, pipe: "_Pipe", items: list[tuple[float, "_Segment"]]) -> None:
        for state in pipe.toxics or ():
            items = state.apply(items, pipe.rng)
        held = pipe.held_by_toxics
        if len(held) > 256:  # simpy sets callbacks to None once a segment has arrived
            held[:] = [s for s in held if s.callbacks is not None]
        for t, s in items:
            pipe.schedule(s, self.on_grid(t))
            held.append(s)

    def _release_held(self, pipe: "_Pipe", parked: Sequence[tuple[float, "_Segment"]] = ()) -> None:
        """A toxic went away: what it was still holding goes on at once, through the toxics left,
        as Toxiproxy flushes a removed toxic's buffer (a removed bandwidth limit does not keep
        trickling what it had queued). ``parked`` are segments a toxic kept out of the queue."""
        pending = [s for s in pipe.held_by_toxics if s.callbacks]
        pipe.held_by_toxics = []
        if not pending and not parked:
            return
        now = self.world.env._now
        pipe._next_free = now
        items = []
        for seg in pending:
            seg.callbacks = []  # the copy in the queue arrives as nothing
            items.append((now + self.one_way(pipe.src.host, pipe.dst.host, pipe.rng), seg.clone(seg.data)))
        for _, seg in parked:  # never scheduled: they go on as they are
            items.append((now + self.one_way(pipe.src.host, pipe.dst.host, pipe.rng), seg))
        items.sort(key=lambda item: item[1].sent_at)
        self._through_toxics(pipe, items)

    def intercept(self, pipe: "_Pipe", seg: "_Segment") -> bool:
        """True when the segment is held or lost instead of arriving now."""
        gate = self._gates.get(pipe) if self._gates else None
        if gate is not None and gate.held:
            gate.held.append(seg)
            return True
        blocked = (pipe.src.host.name, pipe.dst.host.name) in self._blocked
        if blocked or not pipe.dst.host.up:
            if not blocked and seg.kind == _RST:
                return True  # a reset to a dead host needs no answer
            if gate is None:
                gate = self._gates[pipe] = _Gate()
            gate.held.append(seg)
            gate.since = self.world.env._now
            if seg.kind != _RST:  # nobody waits for a reset to be acknowledged
                self.world.after(self.user_timeout, self._check_user_timeout, pipe, gate.since)
            return True
        return False

    def _check_user_timeout(self, pipe: "_Pipe", since: float) -> None:
        gate = self._gates.get(pipe)
        if gate is None or not gate.held or gate.since != since:
            return
        conn = pipe.conn
        self.world.trace.add(self.world.env._now, "user-timeout", conn.id, f"{pipe.src.host.name}->{pipe.dst.host.name}")
        del self._gates[pipe]
        # The sender's stack gives up on its unacknowledged bytes and aborts: its RST goes the
        # same way as the bytes did, so across a partition the other end only learns of it
        # when the partition heals (or from its own user timeout), as with real TCP.
        pipe.src._receive_reset(TimeoutError(errno.ETIMEDOUT, "[Errno 110] Connection timed out"))
        rst = pipe.make(_RST)
        gate = self._gates[pipe] = _Gate()
        gate.held.append(rst)
        gate.since = self.world.env._now
        self._release([pipe])

    def _release(self, pipes: Iterable["_Pipe"]) -> None:
        for pipe in pipes:
            gate = self._gates.get(pipe)
            if gate is None or not gate.held or gate.releasing:
                continue
            if (pipe.src.host.name, pipe.dst.host.name) in self._blocked or not pipe.dst.host.up:
                continue
            gate.releasing = True
            self.world.after(self.one_way(pipe.src.host, pipe.dst.host, pipe.rng), self._deliver_held, pipe)

    def _deliver_held(self, pipe: "_Pipe") -> None:
        gate = self._gates.pop(pipe, None)
        if gate is None:
            return
        net = self.world.net
        while gate.held:
            net.arrive_now(pipe, gate.held.popleft())

    # -- partitions ----------------------------------------------------------------------------------------
    def partition(self, a: Iterable[str], b: Iterable[str], oneway: bool = False) -> None:
        a, b = sorted(set(a)), sorted(set(b))
        for x in a:
            for y in b:
                if x != y:
                    self._blocked.add((x, y))
                    if not oneway:
                        self._blocked.add((y, x))
        arrow = "->" if oneway else "<->"
        self.world.trace.add(self.world.env._now, "fault", 0, f"partition {','.join(a)}{arrow}{','.join(b)}")

    def heal(self, a: Iterable[str] | None = None, b: Iterable[str] | None = None) -> None:
        if a is None or b is None:
            self._blocked.clear()
            self.world.trace.add(self.world.env._now, "fault", 0, "heal all")
        else:
            for x in a:
                for y in b:
                    self._blocked.discard((x, y))
                    self._blocked.discard((y, x))
            self.world.trace.add(self.world.env._now, "fault", 0, f"heal {','.join(sorted(a))}<->{','.join(sorted(b))}")
        self.wake()

    def wake(self) -> None:
        """Let held segments and connection attempts go where nothing blocks them any more."""
        self._release(sorted(self._gates, key=lambda p: (p.conn.id, p is p.conn.down)))
        held, self._held_syns = self._held_syns, []
        for net, client, target, port in held:
            if (client.host.name, target.name) in self._blocked:
                self._held_syns.append((net, client, target, port))
            elif not client._connect_waiter.done():
                self.world.after(self.one_way(client.host, target), self._syn_arrives, net, client, target, port)
