#!/bin/sh
# The container's entrypoint: checks what a container gets wrong most often, then runs
# passage as PID 1 (exec), so that signals reach it: docker stop sends SIGTERM, a drain;
# docker kill --signal=HUP reloads; SIGINT stops at once.
set -eu

if [ "$(id -u)" = 0 ] && [ -z "${PASSAGE_ALLOW_ROOT:-}" ]; then
    echo "passage-entrypoint: refusing to run as root; the image runs as 'passage'" \
        "(uid $(id -u passage 2>/dev/null || echo 10001)); set PASSAGE_ALLOW_ROOT=1 to insist" >&2
    exit 64
fi

if [ "${1:-}" = serve ]; then
    data=${PASSAGE_DATA_DIR:-/var/lib/passage}
    if ! mkdir -p "$data" 2>/dev/null || [ ! -w "$data" ]; then
        echo "passage-entrypoint: $data is not writable by uid $(id -u):" \
            "give the volume to that user (chown $(id -u):$(id -g))" >&2
        exit 73
    fi
fi

exec passage "$@"
