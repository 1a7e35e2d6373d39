#!/usr/bin/env node
// The newest glibc and libstdc++ symbol versions a binary needs, read from its
// dynamic symbols with objdump -T (or readelf --dyn-syms), against the bounds
// the prebuilt binaries promise: glibc 2.17 and the libstdc++ of GCC 6.
//
//   node scripts/check-symbol-versions.mjs FILE...   exits 1 if one is above
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

export const bounds = { GLIBC: '2.17', GLIBCXX: '3.4.22', CXXABI: '1.3.10' };

function newer(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

/** The tool that reads dynamic symbols here (binutils, any architecture's ELF), or null. */
export function symbolTool() {
  for (const [tool, args] of [['objdump', ['-T']], ['readelf', ['--dyn-syms', '-W']]]) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
      return { tool, args };
    } catch {}
  }
  return null;
}

/** For each of GLIBC, GLIBCXX and CXXABI: the newest version the binary needs, and the symbols that need more than the bound. */
export function symbolVersions(file, { tool, args } = symbolTool()) {
  const text = execFileSync(tool, [...args, file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const newest = {};
  const tooNew = [];
  for (const line of text.split('\n')) {
    const match = /\b(GLIBC|GLIBCXX|CXXABI)_([0-9][0-9.]*|PRIVATE)\b/.exec(line);
    if (!match) continue;
    const [, lib, version] = match;
    const symbol = line.trim().split(/\s+/).pop().replace(/@.*/, '');
    if (version === 'PRIVATE' || newer(version, bounds[lib])) tooNew.push(`${symbol} (${lib}_${version})`);
    if (version !== 'PRIVATE' && (!newest[lib] || newer(version, newest[lib]))) newest[lib] = version;
  }
  return { newest, tooNew };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const tool = symbolTool();
  if (!tool) {
    console.error('check-symbol-versions: neither objdump nor readelf is here (apt-get install binutils)');
    process.exit(1);
  }
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const { newest, tooNew } = symbolVersions(file, tool);
    const summary = Object.entries(newest).map(([lib, version]) => `${lib}_${version}`).join(', ');
    console.log(`${file}: needs ${summary || 'no versioned symbols'}`);
    if (tooNew.length) {
      failed = true;
      console.log(`  above GLIBC_${bounds.GLIBC}, GLIBCXX_${bounds.GLIBCXX}, CXXABI_${bounds.CXXABI}: ${tooNew.join(', ')}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
