#!/usr/bin/env bash
# The embedded default: a btrfs store on a loop image, an OCI image layout holding the
# base images the examples use, and the machine config that makes them `cairn`'s
# defaults. Idempotent: what exists is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN_DIR=${CAIRN_DIR:-/var/lib/cairn}
IMAGE_SIZE=${CAIRN_STORE_SIZE:-20G}
mkdir -p "$CAIRN_DIR"

if ! mountpoint -q "$CAIRN_DIR/btrfs"; then
  if [ ! -f "$CAIRN_DIR/btrfs.img" ]; then
    echo "default-store: making a $IMAGE_SIZE btrfs image at $CAIRN_DIR/btrfs.img (sparse)"
    truncate -s "$IMAGE_SIZE" "$CAIRN_DIR/btrfs.img"
    mkfs.btrfs -q "$CAIRN_DIR/btrfs.img"
  fi
  mkdir -p "$CAIRN_DIR/btrfs"
  mount -o loop "$CAIRN_DIR/btrfs.img" "$CAIRN_DIR/btrfs"
fi

node tools/make-base-images.mjs "$CAIRN_DIR/images"

cat > "$CAIRN_DIR/cairn.json" <<JSON
{
  "store": "btrfs:$CAIRN_DIR/btrfs",
  "fetcher": "oci:$CAIRN_DIR/images",
  "runtime": "runc",
  "healthcheckImage": "cairn/busybox"
}
JSON
echo "default-store: store btrfs:$CAIRN_DIR/btrfs, images oci:$CAIRN_DIR/images (config $CAIRN_DIR/cairn.json)"
