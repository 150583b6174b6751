"""Torch-free inference helpers that run on the device: post-processing of model outputs."""
