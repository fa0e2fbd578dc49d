"""devices-10: amqtt clients publishing QoS 1 once per virtual second; time compression."""

from __future__ import annotations

from sim.demo import run_devices


def figure(quick: bool) -> dict[str, float]:
    seconds = 60.0 if quick else 600.0
    result, delivered = run_devices(seed=1, devices=10, seconds=seconds)
    return {
        "virtual_seconds": seconds,
        "wall_seconds": round(result.wall_seconds, 3),
        "virtual_per_wall": round(result.compression, 1),
        "delivered": float(delivered),
    }
