// The binaries the tarball ships load on glibc 2.17 and later, and with the
// libstdc++ of GCC 6 and later (native/compat/): no dynamic symbol needs a
// newer version. The addon built for these tests is built the same way; the
// prebuilds exist after npm run prebuild, which needs the arm64 cross compiler.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// shared with scripts/prebuild.sh
import { bounds, symbolTool, symbolVersions } from '../scripts/check-symbol-versions.mjs';
import { packageRoot } from './helpers';

const tool = symbolTool();
if (!tool) console.log('prebuild-glibc: skipped, neither objdump nor readelf is here (apt-get install binutils)');

// what node-gyp-build loads: build/Release, or prebuilds/linux-x64 after npm run prebuild
const loaded = path.relative(packageRoot, createRequire(import.meta.url)('node-gyp-build').path(packageRoot));
const binaries = [
  ['the addon the tests load', loaded],
  ['the linux-x64 prebuild', 'prebuilds/linux-x64/shmchan.glibc.node'],
  ['the linux-arm64 prebuild', 'prebuilds/linux-arm64/shmchan.glibc.node'],
];

describe.skipIf(!tool)(`symbol versions: at most GLIBC_${bounds.GLIBC}, GLIBCXX_${bounds.GLIBCXX}, CXXABI_${bounds.CXXABI}`, () => {
  for (const [what, file] of binaries) {
    const present = existsSync(path.join(packageRoot, file));
    if (!present) console.log(`prebuild-glibc: ${what} skipped, ${file} is not built (npm run prebuild, which needs g++-aarch64-linux-gnu)`);
    it.skipIf(!present)(`${what} (${file})`, () => {
      const { newest, tooNew } = symbolVersions(path.join(packageRoot, file), tool);
      expect(tooNew).toEqual([]);
      expect(newest.GLIBC).toBeDefined();
    });
  }

  it('a binary needing newer versions fails the check: node itself', () => {
    // Node 20 needs glibc 2.28 and newer libstdc++ symbols than the bounds
    expect(symbolVersions(process.execPath, tool).tooNew.length).toBeGreaterThan(0);
  });
});
