"""The remote backend: OpenAI-compatible inference servers (vLLM, SGLang, llama.cpp, ...)."""

from hermes_bot.inference.remote.backend import RemoteBackend

__all__ = ["RemoteBackend"]
