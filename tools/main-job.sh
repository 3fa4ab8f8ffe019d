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
