"""The ``hermes-bot`` command (and ``python bot.py``): arguments, config, logging, run.

The only place that configures logging. Exit codes: 0 clean, 1 a fatal error
at run time (model, platform), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from hermes_bot.adapters.platforms import configured_platforms
from hermes_bot.backend import Backend
from hermes_bot.config import DEFAULT_MODEL, Settings
from hermes_bot.config_loader import load_settings
from hermes_bot.config_sources import ConfigFile, find_config_file, user_config_dir, user_log_dir
from hermes_bot.errors import ConfigError, HermesBotError
from hermes_bot.observability import JsonFormatter, Telemetry, log_periodically
from hermes_bot.observability import serve as serve_metrics

_log = logging.getLogger(__name__)

DESCRIPTION = "Self-hosted OpenHermes chatbot for Discord and Slack, or a chat in your terminal."
EPILOG = """\
where it runs:
  With a Discord token (DISCORD_TOKEN, or [discord] token in the config file) the bot
  connects to Discord; with Slack's tokens (SLACK_BOT_TOKEN and SLACK_APP_TOKEN, or
  [slack] bot_token / app_token) to Slack; with both, to both from one process. Without
  any it chats in the terminal when started from a terminal, and otherwise exits with
  an error. --console always chats in the terminal
  (reading stdin, so `printf 'hello\\n' | hermes-bot --console` works).

configuration:
  --config PATH, else ./config.toml, else {user_config}
  (see config.example.toml; every key is optional). Environment variables override
  the file: HERMES_BOT_<SECTION>__<KEY>, e.g. HERMES_BOT_MODEL__ID=/models/openhermes
  or HERMES_BOT_GENERATION__MAX_NEW_TOKENS=256. Options override both.

model files:
  The first start downloads {model} (about 14.5 GB) into
  the Hugging Face cache ($HF_HOME, default ~/.cache/huggingface). --model DIR uses a
  local copy; HF_HUB_OFFLINE=1 never touches the network.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hermes-bot",
        description=DESCRIPTION,
        epilog=EPILOG.format(user_config=user_config_dir() / "config.toml", model=DEFAULT_MODEL),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", help="config file (default: see below)")
    parser.add_argument("--console", action="store_true", help="chat in the terminal")
    parser.add_argument("--model", metavar="ID_OR_DIR", help="hub id or local directory")
    parser.add_argument("--device", help="auto, cuda, cpu or mps (overrides model.device)")
    parser.add_argument(
        "--remote",
        action="append",
        metavar="URL",
        help="OpenAI-compatible server base URL ending in /v1; repeat for several "
        "(overrides remote.urls; no model is loaded in the bot; see docs/scaling.md)",
    )
    return parser.parse_args(argv)


class _OneLineReconnects(logging.Filter):
    """discord.py logs a whole traceback on every gateway reconnect attempt: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            error = record.exc_info[1]
            why = " ".join(str(error).split()) or type(error).__name__
            record.msg, record.args = f"{record.getMessage()} ({why})", ()
            record.exc_info, record.exc_text = None, None
        return True


def setup_logging(level: str, log_file: Path | None = None, log_format: str = "text") -> None:
    """Log to stderr, or only to ``log_file`` (the console keeps the terminal for the chat);
    ``log_format`` "json" writes one JSON object per line."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if log_format == "json" else formatter)
    handler.addFilter(_OneLineReconnects())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpx2", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The download logs one line per failed attempt itself; the hub's own retries stay quiet.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    # Library warnings (torch, transformers) go to the log, not into the chat.
    logging.captureWarnings(True)


def build_settings(args: argparse.Namespace, config: ConfigFile) -> Settings:
    overrides = {
        "model.id": ("--model", args.model),
        "model.device": ("--device", args.device),
        "remote.urls": ("--remote", args.remote),
    }
    return load_settings(config.path, required=args.config is not None, overrides=overrides)


def make_backend(settings: Settings) -> Backend:
    """The remote backend when servers are configured (no torch), else the local model."""
    if settings.remote.urls:
        from hermes_bot.inference.remote import RemoteBackend

        return RemoteBackend.from_settings(settings)
    from hermes_bot.inference.loading import route_library_logs
    from hermes_bot.inference.transformers_backend import TransformersBackend

    route_library_logs()
    return TransformersBackend.from_settings(settings)


@contextlib.asynccontextmanager
async def operated(settings: Settings, telemetry: Telemetry) -> AsyncIterator[None]:
    """The metrics endpoint and the periodic metrics line, while the bot runs."""
    metrics = settings.metrics
    runner = None
    if metrics.enabled:
        runner = await serve_metrics(telemetry, metrics.host, metrics.port)
    ticker = None
    if metrics.log_interval > 0:
        ticker = asyncio.create_task(log_periodically(telemetry, metrics.log_interval))
    try:
        yield
    finally:
        if ticker is not None:
            ticker.cancel()
        if runner is not None:
            await runner.cleanup()


async def run(settings: Settings, console: bool) -> int:
    from hermes_bot.conversation import ConversationStore, open_conversations
    from hermes_bot.pipeline import Pipeline

    # The console keeps only the conversation on screen; a service remembers across restarts.
    conversations = (
        ConversationStore(settings.chat.history_turns)
        if console
        else open_conversations(settings.chat, settings.storage)
    )
    backend = make_backend(settings)
    telemetry = Telemetry(settings.metrics.stuck_after)
    pipeline = Pipeline.from_settings(backend, settings, conversations, telemetry)
    try:
        await conversations.open()
        async with operated(settings, telemetry):
            if not console:
                from hermes_bot.adapters.platforms import serve

                return await serve(settings, pipeline, configured_platforms(settings))
            from hermes_bot.adapters.console import run_console

            where = ", ".join(settings.remote.urls) or settings.model.id
            print(f"hermes-bot: loading {where} ...", file=sys.stderr, flush=True)
            return await run_console(pipeline)
    finally:
        await backend.close()
        await conversations.close()


def _fail(error: HermesBotError) -> None:
    """One line for the owner: the specific advice when there is one, else the detail."""
    specific = error.user_message != error.default_user_message
    print(f"hermes-bot: {error.user_message if specific else error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = find_config_file(args.config)
        settings = build_settings(args, config)
    except ConfigError as error:
        print(f"hermes-bot: {error}", file=sys.stderr)
        return 2
    console = args.console or not configured_platforms(settings)
    if console and not args.console and not sys.stdin.isatty():
        print(
            "hermes-bot: no Discord token (set DISCORD_TOKEN) nor Slack tokens (set "
            "SLACK_BOT_TOKEN and SLACK_APP_TOKEN), in the environment or the config file, and no "
            "terminal to chat in; pass --console to chat over stdin/stdout",
            file=sys.stderr,
        )
        return 2
    log_file = settings.logging.file or (user_log_dir() / "console.log" if console else None)
    try:
        setup_logging(settings.logging.level, log_file, settings.logging.format)
    except OSError as error:
        print(f"hermes-bot: cannot open the log file: {error}", file=sys.stderr)
        return 2
    if log_file is not None:
        print(f"hermes-bot: logging to {log_file}", file=sys.stderr)
    _log.info("%s", config.describe())
    try:
        return asyncio.run(run(settings, console))
    except HermesBotError as error:
        _log.error("fatal: %s", error, exc_info=_log.isEnabledFor(logging.DEBUG))
        _fail(error)
        return 1
    except KeyboardInterrupt:
        return 0
