"""The embedded MQTT broker: amqtt in-process, started, stopped and restarted on demand.

- ``EmbeddedBroker(host, port, flavor="squall"|"amqtt", users=..., acl=...)``: the broker.
  ``"squall"`` (default) is amqtt with squall's MQTT 3.1.1 fixes (``_fixes.py`` lists them,
  each with its statement); ``"amqtt"`` is stock amqtt 0.12.1.
- ``system.broker.conformance``: one check per MQTT 3.1.1 normative statement, against any
  broker (``squall broker --conformance [--against HOST:PORT]``).
"""

from system.broker.embedded import FLAVORS, EmbeddedBroker, Flavor

__all__ = ["FLAVORS", "EmbeddedBroker", "Flavor"]
