"""Inference backends: the protocol, the in-process executor, constrained decoding."""
