#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine (as root): installs the system
# packages Cairn drives, prepares the host (cgroups for crun), installs the npm
# dependencies exactly as locked, builds every project, makes the default store and base
# images, then runs Cairn's main job.
#   --deps-only   packages, host preparation, npm ci and build only (what CI needs)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*"; }

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?1:0)' 2>/dev/null || echo 0)
if [ "$node_ok" != 1 ]; then
  echo "setup: Cairn needs Node.js >= 20.19 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root: Cairn mounts filesystems and runs containers" >&2
  exit 1
fi

# runc/crun run steps; btrfs-progs, xfsprogs and rsync back the stores; busybox-static and
# debootstrap make base images; docker-registry, skopeo and docker.io are the image
# sources the fetchers are tested against; nats-server is the cluster's bus; PostgreSQL is
# the results-store's database for several replicas (its tests run on it and on SQLite);
# chromium drives the dashboard's page tests.
PACKAGES="runc crun btrfs-progs xfsprogs rsync busybox-static debootstrap docker-registry skopeo umoci docker.io tar gzip zstd nats-server postgresql chromium"
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  say "installing $(echo $missing)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

bash tools/prepare-host.sh
bash tools/start-services.sh

say "installing npm dependencies (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
say "building"
NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false npx nx run-many -t build --outputStyle=stream >/dev/null

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

bash tools/default-store.sh
bash tools/main-job.sh
