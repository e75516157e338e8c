"""The deterministic simulator: seeded virtual time, a simulated network and MQTT broker
with Mosquitto 2.0's semantics, and a paho-like client (docs/simulation.md).

Nothing in the product imports this package; it drives the product's cores.
"""
