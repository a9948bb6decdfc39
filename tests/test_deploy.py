"""The operator's files: compose parses and names real settings, the unit verifies, the
Dockerfile installs and runs the way the README does, the dashboard plots real metrics."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hermes_bot.config import Settings
from hermes_bot.config_loader import load_settings
from hermes_bot.conversation import ConversationStore
from hermes_bot.observability import Telemetry

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "hermes-bot.service"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_a_local_and_a_vllm_profile_sharing_volumes() -> None:
    services = _compose()["services"]
    assert services["bot"]["profiles"] == ["local"]
    assert services["vllm"]["profiles"] == services["bot-remote"]["profiles"] == ["vllm"]
    for name in ("bot", "bot-remote"):
        service = services[name]
        assert {"models:/models", "data:/data"} <= set(service["volumes"])
        assert service["env_file"] == ".env"  # the tokens, never in the compose file
    assert services["bot-remote"]["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert (
        services["bot"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    )


def test_compose_and_dockerfile_settings_are_real_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    env = dict(re.findall(r"(HERMES_BOT_\w+)=(\S+)", dockerfile))
    for service in _compose()["services"].values():
        env.update(
            (k, v)
            for k, v in (service.get("environment") or {}).items()
            if k.startswith("HERMES_BOT_")
        )
    if "remote" not in Settings.model_fields:  # the remote backend lands separately
        env = {k: v for k, v in env.items() if not k.startswith("HERMES_BOT_REMOTE__")}
    settings = load_settings(environ=env)  # unknown or invalid variables are errors
    assert str(settings.storage.path) == "/data/conversations.db"
    assert settings.metrics.enabled and settings.metrics.host == "0.0.0.0"


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
    return [
        part.strip() for block in blocks for line in block.splitlines() for part in line.split("&&")
    ]


def test_the_dockerfile_installs_and_starts_the_way_the_readme_says() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    commands = _readme_commands()
    readme_install = next(c for c in commands if "pip install -r requirements" in c)
    readme_run = next(c for c in commands if c.endswith("bot.py"))
    runs = [
        part.strip()
        for line in re.findall(r"^RUN (.*)$", dockerfile, re.M)
        for part in line.split("&&")
    ]
    assert readme_install in runs, f"README installs with {readme_install!r}"
    [cmd] = re.findall(r"^CMD (.*)$", dockerfile, re.M)
    assert shlex.join(json.loads(cmd)) == readme_run
    for command in ("docker build -t hermes-bot .", "docker compose --profile local up -d"):
        assert command in commands and command in (ROOT / "docs" / "deploy.md").read_text()


def test_the_dockerfile_runs_as_a_user_with_volumes_and_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM nvidia/cuda:\S+-runtime-", dockerfile, re.M)
    assert re.search(r"^USER hermes$", dockerfile, re.M)
    assert 'VOLUME ["/models", "/data"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "DISCORD_TOKEN" not in re.sub(r"^#.*$", "", dockerfile, flags=re.M)


def test_the_unit_is_hardened_and_restarts_on_failure() -> None:
    unit = UNIT.read_text(encoding="utf-8")
    for line in (
        "Restart=on-failure",
        "EnvironmentFile=/etc/hermes-bot/env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=hermes-bot",
    ):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this interpreter.
    unit = UNIT.read_text(encoding="utf-8").replace(
        "/opt/hermes-bot/.venv/bin/python", sys.executable
    )
    path = tmp_path / UNIT.name
    path.write_text(unit, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0 and complaints == [], result.stderr


def test_the_dashboard_plots_only_metrics_the_bot_exports() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    telemetry = Telemetry()
    telemetry.watch_conversations(ConversationStore())
    exported = set()
    for family in telemetry.registry.collect():
        exported |= {sample.name for sample in family.samples} | {
            family.name,
            f"{family.name}_total",
        }
    exported |= {f"hermes_bot_{n}_bucket" for n in ("turn_seconds", "time_to_first_token_seconds")}
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bhermes_bot_\w+", target["expr"])
    }
    assert used and used <= exported, used - exported
