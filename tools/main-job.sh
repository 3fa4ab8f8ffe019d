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
echo "== the same build through the cluster: cairn up (NATS, scheduler, spec-compiler, worker, results-store, registry, base-image-builder)"
data=$(mktemp -d /tmp/cairn-up.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export CAIRN_NATS="nats://127.0.0.1:$port"
# Started without the shell function: $! must be the node process itself, or the TERM
# below would stop only a subshell and leave the cluster running.
# The base-image-builder starts building its whole matrix (infra/images: busybox,
# debootstrap, apt) at once, on this worker beside the hello job.
node apps/cli/bin/cairn.js up --nats "$CAIRN_NATS" --data "$data" --results-port 0 --quiet &
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
echo
echo "== the base images: the matrix built by the cluster and published to cairn up's registry"
cairn images rebuild --all
# Every image published, or the first failure with its reason (debootstrap and apt need Debian's archive).
node - <<'WAIT'
const { execFileSync } = require('node:child_process');
const deadline = Date.now() + 45 * 60_000;
let last = '';
for (;;) {
  const images = JSON.parse(execFileSync(process.execPath, ['apps/cli/bin/cairn.js', 'images', 'status', '--json'], { encoding: 'utf8' }));
  const line = images.map((i) => `${i.name} ${i.state}`).join(', ');
  if (line !== last) console.log(`${new Date().toISOString().slice(11, 19)} ${(last = line)}`);
  const failed = images.find((i) => i.state === 'failed');
  if (failed) throw new Error(`base image ${failed.name} failed: ${JSON.stringify(failed)}`);
  if (images.every((i) => i.state === 'published')) break;
  if (Date.now() > deadline) throw new Error(`the matrix was not published within 45 minutes: ${line}`);
  execFileSync('sleep', ['5']);
}
WAIT
cairn images status
registry=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).registry.replace(/^https?:\/\//, "")' "$data/cluster.json")
sed "s|REGISTRY|$registry|" examples/ocaml-hello.spec > "$data/ocaml-hello.spec"
echo
echo "== OBuilder's classic example on them: cairn submit -f examples/ocaml-hello.spec (REGISTRY: $registry) --follow"
cairn submit --pool linux-x86_64 -f "$data/ocaml-hello.spec" examples --follow
