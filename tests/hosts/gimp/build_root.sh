#!/usr/bin/env bash
# Build (once) a Debian 13 root holding GIMP 3 with Python plug-in support, for the
# real-GIMP end-to-end test. Prints the root's path on its last line of stdout.
#
#   tests/hosts/gimp/build_root.sh [CACHE_DIR]     (default: $MATTEKIT_CACHE, else ~/.cache/mattekit-ci)
#
# Needs root (debootstrap, chroot). The root lives outside the repository and is reused
# between runs: a completion marker written last says it is whole; a root without the
# marker (an interrupted build) is removed and rebuilt. A lock serialises concurrent builds.
set -euo pipefail

CACHE=${1:-${MATTEKIT_CACHE:-$HOME/.cache/mattekit-ci}}
SUITE=trixie
MIRROR=${MATTEKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="gimp gir1.2-gegl-0.4 python3"
RECIPE="debootstrap minbase $SUITE; apt: $PACKAGES"   # change it and the root is rebuilt
ROOT=$CACHE/gimp3-$SUITE-root
MARKER=$CACHE/gimp3-$SUITE-root.complete

log() { echo "build_root: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (debootstrap and chroot)"; exit 77
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/gimp3-$SUITE-root.lock"
flock 9

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$RECIPE" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
    echo "$ROOT"; exit 0
fi

unmount_all() {
    local m
    for m in "$ROOT/dev" "$ROOT/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
    done
}
trap unmount_all EXIT

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2; }
fi

rm -f "$MARKER"
if [ -e "$ROOT" ]; then
    log "removing an incomplete or outdated root at $ROOT"
    unmount_all
    rm -rf --one-file-system "$ROOT"
fi

start=$(date +%s)
log "debootstrap $SUITE into $ROOT (about a minute)"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >&2
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
log "installing $PACKAGES inside the root"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $PACKAGES >&2
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin apt-get clean >&2
unmount_all
chroot "$ROOT" /usr/bin/gimp-console-3.0 --version >&2
echo "$RECIPE" > "$MARKER"
log "done in $(( $(date +%s) - start )) s"
echo "$ROOT"
