# syntax=docker/dockerfile:1
# Passage in a container. Build:   docker build -t passage .
# Run it with host networking: the relay hands out UDP ports from a range (49152-65535
# by default) that a port mapping cannot publish one by one. docs/operations.md has the
# rest (compose.yaml: with PostgreSQL and Redis).
#
#   docker run -d --name passage --network host -v passage-data:/var/lib/passage passage \
#       serve --realm example.com --public-host turn.example.com

# --- build: Passage and its dependencies into one virtual environment -------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# A C compiler in the build stage only: pip builds the compiled TURN fast path
# (passage.turn.fastpath, --fast-path auto); the run stage gets the built module, not gcc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN python -m venv /opt/passage \
 && /opt/passage/bin/pip install --no-cache-dir "/src[postgres,cluster]"

# --- run: the environment, a user, nothing else --------------------------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 passage \
 && useradd --system --uid 10001 --gid passage --home-dir /var/lib/passage \
        --shell /usr/sbin/nologin passage \
 && install -d -o passage -g passage -m 0700 /var/lib/passage
COPY --from=build /opt/passage /opt/passage
COPY contrib/docker/entrypoint.sh /usr/local/bin/passage-entrypoint
ENV PATH=/opt/passage/bin:$PATH \
    PASSAGE_DATA_DIR=/var/lib/passage \
    PYTHONUNBUFFERED=1
USER passage
WORKDIR /var/lib/passage
VOLUME ["/var/lib/passage"]
# Documentation only under --network host: STUN/TURN, TURN over TLS, the API, metrics.
EXPOSE 3478/udp 3478/tcp 5349/tcp 8443/tcp 9641/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["passage-entrypoint"]
CMD ["serve"]
