"""The Raspberry Pi agent: runs a deployed bundle, reports over MQTT, obeys commands. Torch-free."""
