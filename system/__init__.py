"""squall's message system: a small, real MQTT platform. Imports nothing of sim or chaos."""
