"""The Slack adapter (slack-bolt, Socket Mode): events, slash commands, Block Kit, streaming."""

from hermes_bot.adapters.slack.app import SlackBot, run_slack

__all__ = ["SlackBot", "run_slack"]
