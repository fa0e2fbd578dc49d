"""The real-time world: a Toxiproxy-compatible proxy, the real-time runner, soak and nightly."""
