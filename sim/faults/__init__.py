"""The fault vocabulary: Toxiproxy's toxics for links, plus what only a simulation can do
(partitions, crashes, clock skew), fault schedules, and swarm schedules drawn from a seed.
Hypothesis strategies live in `sim.faults.strategies`.
"""

from sim.faults.schedule import (
    FAULT_KINDS,
    CrashFault,
    DownFault,
    Fault,
    PartitionFault,
    Schedule,
    SkewFault,
    SwarmMix,
    TimedFault,
    ToxicFault,
    swarm_schedule,
)
from sim.faults.toxics import TOXIC_TYPES, Toxic

__all__ = [
    "FAULT_KINDS",
    "TOXIC_TYPES",
    "CrashFault",
    "DownFault",
    "Fault",
    "PartitionFault",
    "Schedule",
    "SkewFault",
    "SwarmMix",
    "TimedFault",
    "Toxic",
    "ToxicFault",
    "swarm_schedule",
]
