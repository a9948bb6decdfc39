"""Write requirements.txt and requirements-dev.txt from pyproject.toml (the one source).

python scripts/sync_requirements.py          # rewrite both files
python scripts/sync_requirements.py --check  # exit 1 when either is out of date
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Generated from pyproject.toml by scripts/sync_requirements.py; edit pyproject.toml.\n"


def rendered(root: Path = ROOT) -> dict[str, str]:
    """The text each requirements file must have, by file name."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    runtime = (
        HEADER
        + "# No GPU? Install torch from PyTorch's CPU wheel index first (README).\n"
        + "".join(f"{line}\n" for line in project["dependencies"])
    )
    dev = HEADER + "-r requirements.txt\n" + "".join(f"{line}\n" for line in extras["dev"])
    return {"requirements.txt": runtime, "requirements-dev.txt": dev}


def main(argv: list[str]) -> int:
    stale = [
        name
        for name, text in rendered().items()
        if not (ROOT / name).is_file() or (ROOT / name).read_text(encoding="utf-8") != text
    ]
    if "--check" in argv:
        for name in stale:
            print(f"{name} is out of date: run python scripts/sync_requirements.py")
        return 1 if stale else 0
    for name, text in rendered().items():
        (ROOT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
