"""Starting real inference servers on loopback (tests and benchmarks/remote.py).

llama.cpp's server runs from the xllamacpp wheel in a child process (so it can be
killed); ``transformers serve`` from transformers' serving extra.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class RunningServer:
    """A server process on loopback; ``url`` is its OpenAI base URL (ends in /v1)."""

    url: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started_in: float  # seconds it took to answer /health (set once it has)
    model: str = ""  # the model name it serves, where requests must name it

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, connections reset."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not healthy after {timeout}s: {log.read_text()[-2000:]}")


def start_llama_server(
    gguf: Path,
    log_dir: Path,
    *,
    slots: int = 2,
    slot_tokens: int = 2048,
    port: int = 0,
    api_key: str = "",
) -> RunningServer:
    """llama.cpp's server on ``gguf``: one thread, context = slots x slot_tokens; requests
    need ``api_key`` when one is given."""
    started = time.monotonic()
    log = log_dir / f"llama-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "tests.inference.remote.llama_server", str(gguf)]
    command += ["--slots", str(slots), "--slot-tokens", str(slot_tokens), "--port", str(port)]
    command += ["--api-key", api_key] if api_key else []
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http"):
        process.kill()
        raise RuntimeError(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
    wait_healthy(line, process, log, 60)
    elapsed = time.monotonic() - started
    return RunningServer(f"{line}/v1", process, int(line.rsplit(":", 1)[1]), log, elapsed)


def spawn_transformers_serve(model_dir: Path, log_dir: Path) -> RunningServer:
    """``transformers serve`` with ``model_dir`` preloaded on CPU; not yet waited for."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = log_dir / "transformers-serve.log"
    executable = Path(sys.executable).with_name("transformers")
    command = [str(executable), "serve", str(model_dir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--device", "cpu", "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    return RunningServer(url, process, port, log, time.monotonic(), str(model_dir))
