"""Programs that run on the devices (torch-free)."""
