# The game controller (FastAPI + MQTT + SQLite): `docker compose up -d` (docs/deploy.md).
# The broker is the stock eclipse-mosquitto:2 image; the nodes run on the Pis, not here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ESCAPE_DATA_DIR=/data

WORKDIR /app

# espeak-ng: the clues spoken on the room screens, made here (docs/media.md)
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*

# Only what the package needs — never the whole context, which may hold a secrets
# directory or a developer's .venv.
COPY pyproject.toml README.md ./
COPY config ./config
COPY controller ./controller
COPY nodes ./nodes
COPY protocol ./protocol
COPY props ./props
COPY dashboard ./dashboard
RUN pip install '/app[controller]'

# An unprivileged user owning only its data directory (SQLite sessions and audit log).
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home escape \
    && mkdir -p /data \
    && chown escape:escape /data
USER escape
VOLUME ["/data"]
WORKDIR /data

EXPOSE 8000

# python:3.11-slim has no curl: ask the API with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import json, urllib.request; json.load(urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4))['ok'] or exit(1)"]

CMD ["escape-apartment", "controller", "--config", "/app/config/apartment.yaml", "--broker", "mosquitto:1883", "--host", "0.0.0.0", "--port", "8000"]
