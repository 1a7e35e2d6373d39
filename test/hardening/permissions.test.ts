// Permissions, with real users: the suite runs as root in CI, and the other
// party runs as `nobody` (uid 65534), with the group `nogroup` (65534) or root's
// group (0), through spawn's uid/gid. Opening a channel needs read and write
// permission on its segment; creation is exclusive, so no one can take over a
// name that exists, and no one but its owner (or root) can remove it
// (/dev/shm is sticky).
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel, ShmChanError } from '../../dist/index.js';
import { cleanupChannels, fixturesDir, killFixtures, packageRoot, uniqueName } from '../helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const NOBODY = 65534;
const NOGROUP = 65534;

/** Runs as-user.mjs as uid/gid and returns what it printed. */
function asUser(gid: number, action: string, name: string, extra?: unknown): Promise<{ result: unknown; code?: string; errno?: string; message?: string }> {
  return new Promise((resolve, reject) => {
    const args = [path.join(fixturesDir, 'as-user.mjs'), action, name, ...(extra === undefined ? [] : [JSON.stringify(extra)])];
    const child = spawn(process.execPath, args, { cwd: packageRoot, uid: NOBODY, gid });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

const segment = (name: string) => readFileSync(`/dev/shm/${name}`);
const denied = { result: 'error', code: 'ERR_PERMISSION', errno: 'EACCES' };
const works = { result: { from: NOBODY } };

describe.runIf(process.getuid?.() === 0)('as root, with nobody as the other user', () => {
  for (const [permissions, group, other] of [
    [0o600, denied, denied],
    [0o660, works, denied],
    [0o640, denied, denied], // the group may read but not write: opening needs both
    [0o666, works, works],
  ] as const) {
    it(`${permissions.toString(8).padStart(4, '0')}: a group member ${group === works ? 'may' : 'may not'} use it, anyone else ${other === works ? 'may' : 'may not'}`, async () => {
      const name = uniqueName(`perm-${permissions.toString(8)}`);
      const channel = Channel.create(name, { capacity: 4096, permissions });
      try {
        expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(permissions);
        const before = segment(name);
        // gid 0: a member of the owner's group (root); nogroup: anyone else
        expect(await asUser(0, 'open', name)).toMatchObject(group);
        expect(await asUser(NOGROUP, 'open', name)).toMatchObject(other);
        if (group !== works && other !== works) expect(segment(name).equals(before), 'a refused opener changed the segment').toBe(true);
        else expect(channel.stats().messagesSent).toBe([group, other].filter((x) => x === works).length);
      } finally {
        channel.close();
      }
    });
  }

  it('creation is exclusive: another user cannot create, replace or remove an existing channel', async () => {
    for (const permissions of [0o600, 0o666]) {
      const name = uniqueName(`exclusive-${permissions.toString(8)}`);
      const channel = Channel.create(name, { capacity: 4096, permissions });
      try {
        channel.sendSync('mine');
        const before = segment(name);
        const stat = statSync(`/dev/shm/${name}`);
        expect(await asUser(NOGROUP, 'create', name, { permissions: 0o666 })).toMatchObject({ result: 'error', code: 'ERR_CHANNEL_EXISTS' });
        expect(await asUser(NOGROUP, 'unlink', name)).toMatchObject({ result: 'error', code: 'ERR_PERMISSION' });
        const after = statSync(`/dev/shm/${name}`);
        expect([after.ino, after.uid, after.mode]).toEqual([stat.ino, stat.uid, stat.mode]);
        expect(segment(name).equals(before)).toBe(true);
      } finally {
        channel.close();
      }
    }
  });

  it('a name squatted by another user is not adopted: create says ERR_CHANNEL_EXISTS, open ERR_INCOMPATIBLE', async () => {
    const name = uniqueName('squatted');
    expect(await asUser(NOGROUP, 'squat', name)).toEqual({ result: 'ok' });
    expect(lstatSync(`/dev/shm/${name}`).uid).toBe(NOBODY);
    expect(() => Channel.create(name)).toThrow(expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS' }));
    expect(() => Channel.open(name)).toThrow(expect.objectContaining({ code: 'ERR_INCOMPATIBLE' }));
    expect(segment(name).equals(Buffer.alloc(16384, 0x5a))).toBe(true);
  });

  it('a symbolic link planted at the name is never followed: the file it points to stays untouched', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shmchan-perm-'));
    const target = path.join(dir, 'precious');
    writeFileSync(target, 'do not touch');
    chmodSync(dir, 0o755);
    const name = uniqueName('symlink');
    try {
      expect(await asUser(NOGROUP, 'symlink', name, target)).toEqual({ result: 'ok' });
      expect(() => Channel.create(name)).toThrow(expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS' }));
      let error: unknown;
      try {
        Channel.open(name).close();
      } catch (caught) {
        error = caught;
      }
      // refused by O_NOFOLLOW (ELOOP) or by fs.protected_symlinks (EACCES)
      expect(error).toBeInstanceOf(ShmChanError);
      expect(readFileSync(target, 'utf8')).toBe('do not touch');
      expect(statSync(target).size).toBe(12);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
