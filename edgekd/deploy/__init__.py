"""Deploying a model with its agent to a device: one module per target (local, rpi over SSH; esp32 lives in
edgekd.mcu). Torch-free."""
