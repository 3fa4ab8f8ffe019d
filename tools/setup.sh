#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine: checks Node, installs the
# npm dependencies exactly as locked, builds every project, then runs Cairn's main job.
#   --deps-only   install and build, but do not run the main job (what CI needs)
set -euo pipefail
cd "$(dirname "$0")/.."

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?1:0)' 2>/dev/null || echo 0)
if [ "$node_ok" != 1 ]; then
  echo "setup: Cairn needs Node.js >= 20.19 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

echo "setup: installing npm dependencies (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
echo "setup: building"
NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false npx nx run-many -t build --outputStyle=stream >/dev/null

if [ "${1:-}" != "--deps-only" ]; then
  bash tools/main-job.sh
fi
