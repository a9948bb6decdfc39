"""Runs llama.cpp's server (the xllamacpp wheel) on loopback until killed.

python -m tests.inference.remote.llama_server MODEL.gguf [--slots N] [--slot-tokens T]

Prints the base URL (``http://127.0.0.1:PORT``) on one line once it listens.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    import xllamacpp

    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--slot-tokens", type=int, default=2048)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.slots
    params.n_ctx = args.slots * args.slot_tokens
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.n_threads_http = 4
    params.hostnames = ["127.0.0.1"]
    params.port = args.port or _free_port()
    params.warmup = False
    if args.api_key:
        params.api_keys = [args.api_key]
    server = xllamacpp.Server(params)
    print(server.listening_address, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    del server
    sys.exit(0)


if __name__ == "__main__":
    main()
