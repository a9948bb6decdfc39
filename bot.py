"""hermes-bot entry point: parse arguments, load config, set up logging, run.

python bot.py                      Discord when a token is configured, else the console
python bot.py --console            chat in the terminal
python bot.py --model ./my-model   override model.id (a hub id or a local directory)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from hermes_bot.config import Settings, load_settings
from hermes_bot.errors import ConfigError, HermesBotError

_log = logging.getLogger("hermes_bot")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Self-hosted OpenHermes chatbot.")
    parser.add_argument("--config", help="config file (default: ./config.toml if present)")
    parser.add_argument("--console", action="store_true", help="chat in the terminal")
    parser.add_argument("--model", help="model id or local directory (overrides model.id)")
    parser.add_argument("--device", help="auto, cuda, cpu or mps (overrides model.device)")
    return parser.parse_args(argv)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, required=args.config is not None)
    overrides = {"id": args.model, "device": args.device}
    model_updates = {key: value for key, value in overrides.items() if value}
    if model_updates:
        model = settings.model.model_validate({**settings.model.model_dump(), **model_updates})
        settings = settings.model_copy(update={"model": model})
    return settings


async def run(settings: Settings, console: bool) -> int:
    from hermes_bot.inference.transformers_backend import TransformersBackend
    from hermes_bot.pipeline import Pipeline

    backend = TransformersBackend.from_settings(settings)
    pipeline = Pipeline.from_settings(backend, settings)
    use_discord = not console and settings.discord.token is not None
    try:
        if use_discord:
            from hermes_bot.adapters.discord.client import run_discord

            return await run_discord(settings, pipeline)
        from hermes_bot.adapters.console import run_console

        _log.info("loading %s", settings.model.id)
        await backend.start()
        return await run_console(pipeline)
    finally:
        await backend.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = build_settings(args)
    except ConfigError as error:
        print(f"hermes-bot: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"hermes-bot: invalid command-line option: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.logging.level)
    try:
        return asyncio.run(run(settings, args.console))
    except HermesBotError as error:
        _log.debug("fatal error", exc_info=True)
        print(f"hermes-bot: {error}", file=sys.stderr)
        if error.user_message != error.default_user_message:
            print(f"hermes-bot: {error.user_message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
