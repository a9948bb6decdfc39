"""Inference backends: the in-process executor and constrained decoding."""
