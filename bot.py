"""hermes-bot entry point; the installed ``hermes-bot`` command runs the same ``main``.

python bot.py                      Discord and/or Slack when their tokens are set, else the console
python bot.py --console            chat in the terminal
python bot.py --model ./my-model   override model.id (a hub id or a local directory)
python bot.py --remote URL         generate on an OpenAI-compatible server (repeat for several)
python bot.py --help               everything else (config lookup, environment overrides)
"""

from __future__ import annotations

import sys

from hermes_bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
