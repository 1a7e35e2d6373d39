#!/usr/bin/env bash
# Proves the shipped tarball: packs it (prepack runs scripts/prebuild.sh),
# installs it into an empty directory with a PATH that has node and npm but no
# compiler, make or python, and runs a smoke test there: ESM and CommonJS
# entries, two processes exchanging messages, the CLI. Also lints the
# tarball with publint and arethetypeswrong. Fails if the install
# tries to compile. Does it for each architecture asked, x64 and arm64 by
# default: arm64 with an arm64 Node, npm run by it, under qemu-user
# (scripts/arm64-node.sh says what that needs).
#
#   scripts/test-prebuild.sh [x64|arm64]...      npm run test:prebuild
set -euo pipefail
cd "$(dirname "$0")/.."
archs=("$@")
[ $# -gt 0 ] || archs=(x64 arm64)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "test:prebuild: packing"
npm pack --pack-destination "$work" --silent >/dev/null
tarball=$(ls "$work"/shmchan-*.tgz)
contents=$(tar -tzf "$tarball")
for arch in x64 arm64; do
  grep -q "^package/prebuilds/linux-$arch/shmchan\.glibc\.node$" <<<"$contents" || { echo "test:prebuild: no linux-$arch prebuild in the tarball"; exit 1; }
done

# The package's metadata and types as tools see them: publint (exports, files,
# fields) and arethetypeswrong (each entry's types under node10, node16 from
# CommonJS and from ESM, and bundlers) must have nothing to say.
echo "test:prebuild: publint and arethetypeswrong"
lint=$(npx --no-install publint run --strict "$tarball")
echo "$lint"
if grep -qE '^(Errors|Warnings|Suggestions):' <<<"$lint"; then echo "test:prebuild: publint reports problems"; exit 1; fi
npx --no-install attw "$tarball" --format table-flipped

for arch in "${archs[@]}"; do
case $arch in
  x64) node=$(command -v node) ;;
  arm64) node=$(scripts/arm64-node.sh) || { echo "test:prebuild: no arm64 Node to run the arm64 smoke test with"; exit 1; }
    export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu ;;
  *) echo "test:prebuild: no smoke test for $arch"; exit 1 ;;
esac
echo "test:prebuild: $arch, with $("$node" -p '`Node ${process.version} on ${process.arch}`')"

# A PATH with node, npm and a shell's basic tools, and nothing that builds.
# npm is a script that runs the node on PATH.
bin="$work/$arch/bin"
mkdir -p "$bin"
ln -s "$node" "$bin/node"
for tool in npm npx sh env cat ls mkdir rm cp mv uname; do
  ln -s "$(command -v "$tool")" "$bin/$tool"
done
for tool in cc gcc g++ c++ clang make python python3; do
  if PATH="$bin" command -v "$tool" >/dev/null; then echo "test:prebuild: $tool is still on PATH"; exit 1; fi
done

app="$work/$arch/app"
mkdir -p "$app"
cd "$app"
echo '{ "name": "shmchan-smoke", "version": "1.0.0", "private": true }' >package.json
echo "test:prebuild: installing $(basename "$tarball") with no compiler on PATH"
PATH="$bin" npm install "$tarball" --no-audit --no-fund --prefer-offline --loglevel=warn 2>&1 | tee "$work/$arch/install.log"
[ -d node_modules/shmchan/build ] && { echo "test:prebuild: the install built the addon from source"; exit 1; }

cat >smoke-child.cjs <<'JS'
// opened by name from another process, through the CommonJS entry
const { Channel } = require('shmchan');
const channel = Channel.open(process.argv[2], { timeout: 10_000 });
channel.sendSync({ hello: 'from the child', pid: process.pid });
channel.end();
channel.close();
JS
cat >smoke.mjs <<'JS'
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Channel, ShmChanError } from 'shmchan';

const require = createRequire(import.meta.url);
const loaded = require('node-gyp-build').path(new URL('node_modules/shmchan', import.meta.url).pathname);
if (!loaded.includes(`/prebuilds/linux-${process.arch}/`)) throw new Error(`the addon came from ${loaded}, not the ${process.arch} prebuild`);
if (require('shmchan').Channel !== Channel) throw new Error('ESM and CommonJS entries differ');

const name = `shmchan-smoke-${process.pid}`;
const channel = Channel.create(name, { capacity: 4096 });
const child = spawnSync(process.execPath, ['smoke-child.cjs', name], { stdio: 'inherit' });
if (child.status !== 0) throw new Error(`the child failed (${child.status ?? child.signal})`);
const got = [];
for await (const message of channel) got.push(message);
channel.close();
if (got.length !== 1 || got[0].hello !== 'from the child') throw new Error(`received ${JSON.stringify(got)}`);
try {
  Channel.open(name);
  throw new Error('the channel was not removed');
} catch (error) {
  if (!(error instanceof ShmChanError) || error.code !== 'ERR_CHANNEL_NOT_FOUND') throw error;
}
console.log(`smoke: ok (${loaded.slice(loaded.indexOf('prebuilds/'))})`);
JS
PATH="$bin" node smoke.mjs
PATH="$bin" npx --no-install shmchan --help >/dev/null

# npm 11 skips the install scripts of dependencies that allowScripts does not
# cover (shmchan's is node-gyp-build): the prebuild is then found at load time,
# as above. With the script allowed, as older npm runs it, node-gyp-build must
# find the prebuild at install time too and compile nothing.
rm -rf node_modules package-lock.json
echo '{ "name": "shmchan-smoke", "version": "1.0.0", "private": true, "allowScripts": { "shmchan": true } }' >package.json
echo "test:prebuild: installing again with shmchan's install script allowed"
PATH="$bin" npm install "$tarball" --foreground-scripts --no-audit --no-fund --prefer-offline --loglevel=warn 2>&1 | tee "$work/$arch/install-allowed.log"
grep -q '^> shmchan@.* install$' "$work/$arch/install-allowed.log" || { echo "test:prebuild: the install script did not run"; exit 1; }
[ -d node_modules/shmchan/build ] && { echo "test:prebuild: the install script built the addon from source"; exit 1; }
PATH="$bin" node smoke.mjs
echo "test:prebuild: $arch ok"
cd - >/dev/null
done
echo "test:prebuild: ok (${archs[*]})"
