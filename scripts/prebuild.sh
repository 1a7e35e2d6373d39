#!/usr/bin/env bash
# Builds the binaries the tarball ships into prebuilds/: linux-x64 here and
# linux-arm64 with Debian's cross compiler (apt-get install
# g++-aarch64-linux-gnu), both for glibc 2.17 and later (see native/compat/).
# Fails if the cross compiler is missing: a tarball without the arm64 binary
# would compile from source on every arm64 machine. Then checks the symbol
# versions of both, as test/prebuild-glibc.test.ts does.
#
#   scripts/prebuild.sh          npm run prebuild, and npm pack's prepack
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(uname -m)" = x86_64 ] || { echo "prebuild: builds on x86_64 hosts only (the arm64 binary is cross-compiled)"; exit 1; }
cross=aarch64-linux-gnu
for tool in "$cross-gcc" "$cross-g++" "$cross-strip"; do
  command -v "$tool" >/dev/null || { echo "prebuild: $tool is missing (apt-get install gcc-$cross g++-$cross)"; exit 1; }
done

rm -rf prebuilds
# --tag-libc names them shmchan.glibc.node: node-gyp-build on musl (Alpine)
# then passes them over and loads the addon compiled at install instead.
# prebuildify builds in build/, which the tests load: x64 last leaves it native.
echo "prebuild: linux-arm64 ($cross)"
CC="$cross-gcc" CXX="$cross-g++" LINK="$cross-g++" PREBUILD_STRIP_BIN="$cross-strip" \
  npx --no-install prebuildify --napi --strip --tag-libc --arch arm64
echo "prebuild: linux-x64"
npx --no-install prebuildify --napi --strip --tag-libc

node scripts/check-symbol-versions.mjs prebuilds/linux-*/shmchan.glibc.node
