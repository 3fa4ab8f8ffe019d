#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine (as root): installs the system
# packages Cairn drives, prepares the host (cgroups for crun), installs the npm
# dependencies exactly as locked, builds every project, makes the default store and base
# images, then runs Cairn's main job.
#   --deps-only   packages, host preparation, npm ci and build only (what CI needs)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root: Cairn mounts filesystems and runs containers" >&2
  exit 1
fi

# Node.js 24 first: everything after this (npm ci, the build, the tests) runs on it.
bash tools/install-node.sh
. tools/node-env.sh

# runc/crun run steps; btrfs-progs, xfsprogs and rsync back the stores; busybox-static and
# debootstrap make base images; docker-registry, skopeo and docker.io are the image
# sources the fetchers are tested against; nats-server is the cluster's bus; PostgreSQL is
# the results-store's database for several replicas (its tests run on it and on SQLite);
# chromium drives the dashboard's page tests; zsh and fish check the completion scripts;
# slirp4netns gives (network host) steps the network without the host's loopback;
# zfs-fuse gives the ZFS store's tests real zpool/zfs on a file-backed pool.
PACKAGES="runc crun slirp4netns btrfs-progs xfsprogs zfs-fuse rsync attr acl busybox-static debootstrap docker-registry skopeo umoci docker.io docker-compose tar gzip zstd nats-server postgresql chromium zsh fish"
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  say "installing $(echo $missing)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# kubectl renders infra/k8s (kubectl kustomize) for the k8s manifest tests. Debian bookworm's
# own kubernetes-client is 1.20, whose kustomize is too old for the overlays; the machine's
# apt sources may carry a current `kubectl` package, which is used when it is missing.
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get install -y -qq kubectl >/dev/null 2>&1 || true
fi
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')
if [ -z "$kustomize_version" ] || [ "$kustomize_version" -lt 5 ]; then
  # Cairn itself runs without it: only the manifest tests need it, and they fail saying so.
  echo "setup: warning: kubectl with kustomize v5 or later was not found and could not be installed from apt; test/e2e/k8s-manifests.test.ts (which renders infra/k8s with it) will fail; found: $(kubectl version --client 2>&1 | tr '\n' ' ')" >&2
fi

bash tools/prepare-host.sh
bash tools/start-services.sh

say "installing npm dependencies (npm ci)"
# node-gyp builds native addons (better-sqlite3) against the installed Node's headers:
# no download, and never the headers of another node that a user config names.
npm_config_nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")") \
  npm ci --no-audit --no-fund --loglevel=error
say "building"
NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false npx nx run-many -t build --outputStyle=stream >/dev/null

# `cairn` on PATH: the bundle run by the project's Node, with no npm in between (npx
# costs half a second before Cairn starts).
node_bin=$(readlink -f "$(command -v node)")
cat > /usr/local/bin/cairn <<LAUNCHER
#!/bin/sh
# Made by $(pwd)/tools/setup.sh: runs this checkout's cairn on Node.js $(node --version).
exec "$node_bin" "$(pwd)/apps/cli/bin/cairn.js" "\$@"
LAUNCHER
chmod 755 /usr/local/bin/cairn
say "cairn is $(command -v cairn) ($(cairn --version))"

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

bash tools/default-store.sh
bash tools/main-job.sh
