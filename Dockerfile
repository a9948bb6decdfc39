# hermes-bot in a container: CUDA runtime, non-root, model cache and database on volumes.
#   docker build -t hermes-bot .
#   docker run --gpus all -e DISCORD_TOKEN -v hermes-models:/models -v hermes-data:/data hermes-bot
# See docs/deploy.md (and docker-compose.yml for the whole stack).
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 hermes \
    && mkdir -p /app /models /data \
    && chown hermes:hermes /app /models /data

WORKDIR /app
USER hermes

# Dependencies first, so a code change does not reinstall them (same command as the README).
COPY --chown=hermes:hermes requirements.txt ./
RUN python3 -m venv .venv && .venv/bin/pip install -r requirements.txt

COPY --chown=hermes:hermes bot.py config.example.toml ./
COPY --chown=hermes:hermes hermes_bot ./hermes_bot

# The token comes from the environment at run time (DISCORD_TOKEN), never from the image.
ENV HF_HOME=/models \
    HERMES_BOT_STORAGE__PATH=/data/conversations.db \
    HERMES_BOT_METRICS__ENABLED=true \
    HERMES_BOT_METRICS__HOST=0.0.0.0 \
    HERMES_BOT_METRICS__PORT=9464
VOLUME ["/models", "/data"]
EXPOSE 9464

# Healthy: process up, Discord connected, model loaded, queue moving. The first start
# downloads about 14.5 GB into /models, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20m --retries=3 \
    CMD [".venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

# SIGTERM: stop accepting, answer or notify what was accepted, exit 0.
STOPSIGNAL SIGTERM
CMD [".venv/bin/python", "bot.py"]
