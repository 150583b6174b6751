"""Fleet telemetry: MQTT connection, report spool, collector and report store. Torch-free."""
