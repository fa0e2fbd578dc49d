"""The embedded MQTT broker: amqtt in-process, started, stopped and restarted on demand."""

from system.broker.embedded import EmbeddedBroker

__all__ = ["EmbeddedBroker"]
