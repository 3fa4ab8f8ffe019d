#!/bin/sh
# PostgreSQL 15 from Debian's package, for the results-store: the first start makes the
# cluster (password from /etc/cairn/postgres.password, scram-sha-256 from the compose
# network) and the database `cairn`; every start runs it as user postgres.
set -eu
DATA=/var/lib/postgresql/data
chown postgres:postgres "$DATA"
if [ ! -s "$DATA/PG_VERSION" ]; then
  cp /etc/cairn/postgres.password /tmp/pw && chown postgres /tmp/pw
  setpriv --reuid=postgres --regid=postgres --init-groups initdb -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile=/tmp/pw >/dev/null
  rm /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
  setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$DATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
  setpriv --reuid=postgres --regid=postgres --init-groups psql -h /tmp -U postgres -q -c "CREATE DATABASE cairn"
  setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$DATA" -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$DATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
