"""Measuring exported models the way users compare tools: latency statistics, memory, accuracy. Torch-free."""
