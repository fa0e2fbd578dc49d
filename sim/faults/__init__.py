"""The fault vocabulary: Toxiproxy's toxics for links, plus what only a simulation can do."""

from sim.faults.toxics import TOXIC_TYPES, Toxic

__all__ = ["TOXIC_TYPES", "Toxic"]
