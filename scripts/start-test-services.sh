#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379)
# where they are not already running, so a fresh machine passes `make test`.
set -euo pipefail
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if command -v redis-server >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /tmp --logfile /tmp/passage-redis.log || true
fi
exit 0
