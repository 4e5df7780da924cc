# Revenant: `bot run` in a small image. Runtime requirements only (no TensorFlow: the
# daemon runs the LSTM in NumPy), a non-root user, state in the /data volume.
#
#   docker build -t revenant .
#   docker run -d --name revenant -v revenant-data:/data --memory 512m revenant
#                               # the shipped config: posts go to /data/outbox/
#   docker run -d --name revenant -v revenant-data:/data -e MASTODON_ACCESS_TOKEN \
#       -v $PWD/config.yaml:/app/config.yaml:ro -v $PWD/models:/app/models:ro \
#       --memory 512m revenant  # your config (publisher: mastodon), the token from the env
#   docker stop revenant        # SIGTERM: the post in flight finishes, exit 0 within 10 s
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REVENANT_CONFIG=/app/config.yaml \
    REVENANT_HOME=/data

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The package, with its one C file (bot/engine/_lstm.c: one candidate at a time, 2.5x faster than
# NumPy). The compiler is needed only to build it, so it leaves in the same layer.
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps . && rm -rf build *.egg-info \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && python -c "import bot.engine._lstm"

# A music persona (models/tunes) renders each tune to sound and score with Debian's tools:
# a few hundred megabytes more (README.md, Music personas, has the figure); build with
# --build-arg MUSIC=0 for text personas only.
ARG MUSIC=1
RUN if [ "$MUSIC" = 1 ]; then apt-get update && apt-get install -y --no-install-recommends \
        abcmidi abcm2ps fluidsynth fluid-soundfont-gm ffmpeg librsvg2-bin \
    && rm -rf /var/lib/apt/lists/*; fi

# The shipped config and persona; mount your own over them (-v ...:/app/config.yaml:ro).
COPY config.yaml ./
COPY models ./models

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin revenant \
    && mkdir -p /data && chown revenant:revenant /data
USER revenant
VOLUME ["/data"]

# Unhealthy when the daemon has not written its heartbeat for 180 s.
HEALTHCHECK --interval=60s --timeout=15s --start-period=30s --retries=3 \
    CMD ["bot", "status", "--check"]
STOPSIGNAL SIGTERM
CMD ["bot", "run"]
