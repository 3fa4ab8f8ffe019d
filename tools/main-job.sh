#!/usr/bin/env bash
# Cairn's main job on the embedded default store: plan the example, build it (a Debian
# stage installs gcc from Debian packages and compiles hello.c; the result is copied
# into a busybox image and run), then build it again, every step from cache.
set -euo pipefail
cd "$(dirname "$0")/.."
cairn() { node apps/cli/bin/cairn.js "$@"; }

echo "== cairn plan -f examples/hello.spec examples/hello"
cairn plan -f examples/hello.spec examples/hello
echo
echo "== cairn build -f examples/hello.spec examples/hello"
cairn build -f examples/hello.spec examples/hello
echo
echo "== cairn build again: every step comes from cache"
time cairn build -f examples/hello.spec examples/hello
echo
echo "== cairn dockerfile -f examples/hello.spec"
cairn dockerfile -f examples/hello.spec
echo
echo "== the same build through the cluster: cairn up (NATS, scheduler, spec-compiler, worker, results-store)"
data=$(mktemp -d /tmp/cairn-up.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export CAIRN_NATS="nats://127.0.0.1:$port"
# Started without the shell function: $! must be the node process itself, or the TERM
# below would stop only a subshell and leave the cluster running.
# --no-registry: the base-image builder would build its whole matrix (debootstrap, apt)
# on this worker beside the hello job; the main job's cluster part is the hello build.
node apps/cli/bin/cairn.js up --nats "$CAIRN_NATS" --data "$data" --results-port 0 --no-registry --quiet &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 150); do
  cairn admin workers --json 2>/dev/null | grep -q '"connected":true' && break
  sleep 0.2
done
cairn admin workers
echo
echo "== cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow"
cairn submit --pool linux-x86_64 -f examples/hello.spec examples/hello --follow
