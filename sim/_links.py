"""Links between hosts: how long a segment takes, and where faults get their hands on it.

This is the seam between the network model (`_network`) and the fault layer: every
segment put on the wire goes through `Links.transmit`, every arrival through
`Links.intercept`. Without faults a link is latency plus seeded jitter, order kept.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sim._network import Endpoint, Network, _Connection, _Pipe, _Segment
    from sim._world import Host, World


class Links:
    def __init__(self, world: "World", latency: float, jitter: float, local_latency: float, connect_timeout: float, tick: float) -> None:
        self.world = world
        # Arrivals land on a grid of `tick` seconds, as interrupt coalescing batches them on a
        # real host: what arrives in one tick is handled in one loop wake-up.
        self.tick = tick
        self.latency = latency
        self.jitter = jitter
        self.local_latency = local_latency
        self.connect_timeout = connect_timeout
        self._rng = world.streams("net.links")

    def one_way(self, src: "Host", dst: "Host", rng: Any = None) -> float:
        if src is dst:
            return self.local_latency
        if self.jitter:
            return self.latency + (rng or self._rng).random() * self.jitter
        return self.latency

    # -- hooks called by the network ------------------------------------------------------
    def syn(self, net: "Network", client: "Endpoint", target: "Host", port: int) -> None:
        self.world.after(self.one_way(client.host, target), self._syn_arrives, net, client, target, port)

    def _syn_arrives(self, net: "Network", client: "Endpoint", target: "Host", port: int) -> None:
        if not target.up:
            self.world.after(self.connect_timeout, net.timed_out, client)
            return
        net.deliver_syn(client, target, port)

    def reply(self, net: "Network", to: "Host", frm: "Host", fn: Callable[[], None]) -> None:
        self.world.after(self.one_way(frm, to), fn)

    def attach(self, net: "Network", conn: "_Connection") -> None:
        pass

    def transmit(self, pipe: "_Pipe", seg: "_Segment") -> None:
        pipe.schedule(seg, self.on_grid(seg.sent_at + self.one_way(pipe.src.host, pipe.dst.host, pipe.rng)))

    def on_grid(self, t: float) -> float:
        tick = self.tick
        return math.ceil(t / tick - 1e-6) * tick if tick else t

    def intercept(self, pipe: "_Pipe", seg: "_Segment") -> bool:
        return False
