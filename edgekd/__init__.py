"""edgekd: distil, prune, quantize and export small models, then run and measure them on edge devices."""

__version__ = "0.1.0"
