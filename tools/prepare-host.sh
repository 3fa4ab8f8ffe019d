#!/usr/bin/env bash
# Host preparation that the sandboxes need; idempotent.
set -euo pipefail

# crun 1.8 refuses to start on a hybrid cgroup host ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2") when a controller, here hugetlb, is
# enabled on the v2 hierarchy. A controller that no v2 cgroup uses can be rebound to
# v1 by mounting it there, after which crun starts. runc does not mind either way.
unified=/sys/fs/cgroup/unified
if [ -f "$unified/cgroup.controllers" ]; then
  for c in $(cat "$unified/cgroup.controllers"); do
    if ! mountpoint -q "/sys/fs/cgroup/$c"; then
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" \
        && echo "prepare-host: moved the $c cgroup controller to v1 for crun" \
        || echo "prepare-host: could not move the $c controller to v1; crun will not start here" >&2
    fi
  done
fi
