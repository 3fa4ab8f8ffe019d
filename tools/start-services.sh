#!/usr/bin/env bash
# Starts what the tests and `cairn up` expect to find running when it is not: PostgreSQL on
# 127.0.0.1:5432 that the local root may use without a password (the results-store's
# PostgreSQL tests create and drop their own databases there). NATS needs nothing here:
# tests start private nats-servers, and `cairn up` starts its own when none answers.
set -euo pipefail
say() { echo "setup: $*"; }

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    echo "setup: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
# Tests connect as postgres over TCP without a password, as on a CI machine; allow that
# for loopback only.
hba=$(su postgres -c "psql -tAc 'show hba_file'" 2>/dev/null || true)
if [ -n "$hba" ] && ! grep -q 'cairn: loopback trust' "$hba"; then
  say "allowing password-less PostgreSQL connections from 127.0.0.1 (tests)"
  sed -i '1i host all all 127.0.0.1/32 trust # cairn: loopback trust\nhost all all ::1/128 trust # cairn: loopback trust' "$hba"
  su postgres -c "psql -qc 'select pg_reload_conf()'" >/dev/null
fi
