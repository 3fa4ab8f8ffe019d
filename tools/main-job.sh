#!/usr/bin/env bash
# Cairn's main job on the embedded default: format the example spec, plan every step of
# it against its build context, and print the Dockerfile it corresponds to.
set -euo pipefail
cd "$(dirname "$0")/.."
cairn() { node apps/cli/bin/cairn.js "$@"; }

echo "== cairn fmt examples/hello.spec"
cairn fmt examples/hello.spec
echo
echo "== cairn plan -f examples/hello.spec examples/hello"
cairn plan -f examples/hello.spec examples/hello --image-env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo
echo "== cairn dockerfile -f examples/hello.spec"
cairn dockerfile -f examples/hello.spec
