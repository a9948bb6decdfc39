"""Inference backends: the in-process executor, constrained decoding (the protocol: hermes_bot.backend)."""
