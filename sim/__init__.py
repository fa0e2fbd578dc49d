"""squall's simulated world and everything both runners share.

Public API: `World` (hosts, run), `RunResult`, `Host`, the errors, and `first_divergence`
for comparing two traces.
"""

from sim._trace import Trace, TraceEvent, first_divergence
from sim._world import Host, RunResult, World
from sim.errors import BadInput, Deadlock, Livelock, SimulationError, Unsupported

__all__ = [
    "BadInput",
    "Deadlock",
    "Host",
    "Livelock",
    "RunResult",
    "SimulationError",
    "Trace",
    "TraceEvent",
    "Unsupported",
    "World",
    "first_divergence",
]
