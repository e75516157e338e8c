"""What the nodes and the controller share: the MQTT contract, the MQTT client, secrets."""
