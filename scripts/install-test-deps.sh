#!/usr/bin/env bash
# Debian packages the tests drive as real third-party peers: coturn's
# turnutils_uclient / turnutils_peer / turnserver. And the NAT lab's tools
# (tests/natlab): iproute2's `ip` for network namespaces and veth pairs,
# nftables' `nft` for the NAT boxes and firewalls. Installed only when missing.
set -euo pipefail
missing=()
command -v turnutils_uclient >/dev/null || missing+=(coturn)
command -v openssl >/dev/null || missing+=(openssl)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
# The kernel fast path (--offload xdp, tests/offload): clang and libbpf-dev build the
# XDP program (make offload), bpftool measures it (bench), ethtool makes lab hosts
# send finished checksums as packets off a wire have.
command -v clang >/dev/null || missing+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
command -v bpftool >/dev/null || [ -x /usr/sbin/bpftool ] || missing+=(bpftool)
command -v ethtool >/dev/null || [ -x /usr/sbin/ethtool ] || missing+=(ethtool)
# Debian's Chromium for the WebRTC interop tests (Playwright's Python package
# drives it and brings no browser of its own), and NSS's certutil, which makes
# the trust store it checks Passage's TURN-over-TLS certificate against.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null || missing+=(libnss3-tools)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The unmodified npm clients that the interop tests run against Passage: the
# Azure SDKs (tests/interop/node) and the Hybrid Connections clients hyco-ws and
# hyco-https (tests/interop/hyco). npm ci is skipped while node_modules matches
# the lock file; npm rewrites node_modules/.package-lock.json on every install,
# so an older one means the lock file changed since.
interop_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/interop"
for node_dir in "$interop_dir/node" "$interop_dir/hyco"; do
  if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
    [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
    if ! command -v npm >/dev/null; then
      echo "install-test-deps: npm not found; Node.js and npm are needed for $node_dir" >&2
      exit 1
    fi
    npm ci --no-audit --no-fund --loglevel=error --prefix "$node_dir" >/dev/null
  fi
done
# The tests and the benchmark use free ports of their own, so a turnserver that
# Debian's package may have started is left alone; say so, since `make run`
# wants port 3478.
if pgrep -x turnserver >/dev/null; then
  echo "install-test-deps: note: a turnserver is running; 'make run' needs port 3478 free" >&2
fi
