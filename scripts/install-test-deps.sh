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
# The tests and the benchmark use free ports of their own, so a turnserver that
# Debian's package may have started is left alone; say so, since `make run`
# wants port 3478.
if pgrep -x turnserver >/dev/null; then
  echo "install-test-deps: note: a turnserver is running; 'make run' needs port 3478 free" >&2
fi
