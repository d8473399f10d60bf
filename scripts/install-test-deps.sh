#!/usr/bin/env bash
# Debian packages the tests drive as real third-party peers: coturn's
# turnutils_uclient / turnutils_peer / turnserver. Installed only when missing.
set -euo pipefail
missing=()
command -v turnutils_uclient >/dev/null || missing+=(coturn)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's coturn package may start its own turnserver on 3478; the tests and
# `make run` need that port, so stop any packaged instance we did not start.
if pgrep -x turnserver >/dev/null && [ -z "${PASSAGE_KEEP_TURNSERVER:-}" ]; then
  pkill -x turnserver || true
fi
