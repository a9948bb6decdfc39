"""hermes-bot: a self-hosted chatbot running OpenHermes-2.5 with validated function calls."""

__version__ = "0.1.0"
