// Every shmchan channel on this host, found without joining any of them: each
// candidate segment is mapped, its header validated by the native open, read,
// and unmapped again. No role is claimed, nothing in the segment is written, and
// the look does not count as having it open (it would make a stale channel seem
// live to a process replacing it).
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { native, type NativeSegment } from './core/binding';
import * as L from './core/layout';
import type { CodecKind } from './core/codec';
import { fromNative, nativeCode, timedOut } from './core/errors';
import { codecKindOf, modeOf } from './core/header';
import { normalizeName, type Backend, type Mode } from './core/options';
import { channelStats, type ChannelStats } from './core/stats';

/** One channel as list() finds it. */
export interface ChannelInfo extends Pick<ChannelStats, 'capacity' | 'used' | 'producers' | 'consumers' | 'consumerPid' | 'creatorPid'> {
  /** Without the leading '/'. */
  name: string;
  /** 'posix' or 'sysv'. */
  backend: Backend;
  /** System V only: the segment's key. */
  key?: number;
  /** 'spsc' or 'mpsc'. */
  mode: Mode;
  /** File mode bits, e.g. 0o600. */
  permissions: number;
  /** No live process has the channel open (one without a role counts). */
  stale: boolean;
}

/** What `shmchan stat` shows: the whole header and every counter. */
export interface ChannelDetails extends ChannelInfo, ChannelStats {
  maxMessageSize: number;
  codec: CodecKind;
  createdAt: Date;
}

const POSIX_DIR = '/dev/shm';

/** Reads a validated, mapped segment. */
function describeSegment(name: string, backend: Backend, segment: NativeSegment, permissions: number): ChannelDetails {
  const header = new DataView(segment.buffer(), 0, L.HEADER_SIZE);
  const u32 = (offset: number) => header.getUint32(offset, true);
  const s = channelStats(segment.stats());
  const { consumerPid, creatorPid } = s;
  return {
    name,
    backend,
    mode: modeOf(u32(L.OFF_MODE)),
    capacity: s.capacity,
    used: s.used,
    producers: s.producers,
    consumers: s.consumers,
    consumerPid,
    creatorPid,
    permissions,
    stale: !segment.inUse(),
    maxMessageSize: u32(L.OFF_MAX_MESSAGE),
    codec: codecKindOf(u32(L.OFF_CODEC)),
    createdAt: new Date(Number(header.getBigUint64(L.OFF_CREATED_MS, true))),
    messagesSent: s.messagesSent,
    messagesReceived: s.messagesReceived,
    bytesSent: s.bytesSent,
    bytesReceived: s.bytesReceived,
    ended: s.ended,
    messagesLost: 0,
  };
}

/** Maps a POSIX channel, reads it and unmaps it. Throws a ShmChanError. */
function inspectPosix(name: string, timeoutMs: number): ChannelDetails {
  let segment: NativeSegment;
  try {
    segment = native.openPosix(name, timeoutMs, true);
  } catch (error) {
    if (nativeCode(error) === 'ETIMEDOUT')
      throw timedOut(`channel '${name}' exists but its creator has not finished initialising it (it may have died)`);
    throw fromNative(error, { channel: name });
  }
  try {
    // the file's mode is the truth: it may have been changed with chmod since creation
    return describeSegment(name, 'posix', segment, statSync(`${POSIX_DIR}/${name}`).mode & 0o777);
  } finally {
    segment.close();
  }
}

/** Candidates are regular files in /dev/shm with a valid channel name that are
 * big enough to hold a header and the smallest ring; anything else is skipped,
 * and so is any candidate that cannot be read or is not a valid shmchan segment. */
function listPosix(): ChannelDetails[] {
  let entries;
  try {
    entries = readdirSync(POSIX_DIR, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: ChannelDetails[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || !native.validName(entry.name)) continue;
    try {
      if (statSync(`${POSIX_DIR}/${entry.name}`).size < L.HEADER_SIZE + L.MIN_CAPACITY) continue;
      found.push(inspectPosix(entry.name, 0));
    } catch {
      // foreign, unreadable, corrupt, still initialising, or removed meanwhile
    }
  }
  return found;
}

/** Maps a System V channel by its key, reads it and detaches. Throws a ShmChanError. */
function inspectSysv(name: string, key: number, timeoutMs: number, permissions?: number): ChannelDetails {
  let segment: NativeSegment;
  try {
    segment = native.openSysv(name, key, timeoutMs, true);
  } catch (error) {
    throw fromNative(error, { channel: name });
  }
  try {
    const header = new DataView(segment.buffer(), 0, L.HEADER_SIZE);
    const details = describeSegment(name, 'sysv', segment, permissions ?? header.getUint32(L.OFF_PERMISSIONS, true));
    details.key = key;
    return details;
  } finally {
    segment.close();
  }
}

/** Candidates are the segments of /proc/sysvipc/shm with a key and room for a
 * header and the smallest ring; the header names the channel. `unattached`: only
 * segments no process has attached (a sweep for stale channels need not look into
 * the ones in use, which may be another program's). */
export function listSysv(unattached = false): ChannelDetails[] {
  let table: string;
  try {
    table = readFileSync('/proc/sysvipc/shm', 'utf8');
  } catch {
    return [];
  }
  const found: ChannelDetails[] = [];
  for (const line of table.split('\n').slice(1)) {
    const [keyText, , permsText, sizeText, , , attachedText] = line.trim().split(/\s+/);
    const key = Number(keyText) >>> 0;
    if (keyText === undefined || key === 0 || Number(sizeText) < L.HEADER_SIZE + L.MIN_CAPACITY) continue;
    if (unattached && Number(attachedText) !== 0) continue;
    try {
      const name = native.sysvHolder(key);
      if (typeof name !== 'string') continue;
      found.push(inspectSysv(name, key, 0, parseInt(permsText, 8) & 0o777));
    } catch {
      // foreign, unreadable, corrupt, still initialising, or removed meanwhile
    }
  }
  return found;
}

/** One source of channels per backend. A backend adds itself here with a
 * function that never throws because of one bad segment. */
const sources: Record<Backend, (() => ChannelDetails[]) | undefined> = {
  posix: listPosix,
  sysv: listSysv,
};

function toInfo(d: ChannelDetails): ChannelInfo {
  const info: ChannelInfo = {
    name: d.name,
    backend: d.backend,
    mode: d.mode,
    capacity: d.capacity,
    used: d.used,
    producers: d.producers,
    consumers: d.consumers,
    consumerPid: d.consumerPid,
    creatorPid: d.creatorPid,
    permissions: d.permissions,
    stale: d.stale,
  };
  if (d.key !== undefined) info.key = d.key;
  return info;
}

/** The details of every channel, sorted by name then backend. */
export function listDetails(): ChannelDetails[] {
  const all: ChannelDetails[] = [];
  for (const source of Object.values(sources)) if (source !== undefined) all.push(...source());
  return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.backend < b.backend ? -1 : 1));
}

/** Every shmchan channel on this host. Segments that are not shmchan's are left out. */
export function list(): ChannelInfo[] {
  return listDetails().map(toInfo);
}

/** One channel's header and counters, without joining it. Waits up to timeoutMs
 * for a creator that is still initialising it. With `sysv`, only the System V
 * channel of that key (default: the one derived from the name). */
export function inspect(name: string, timeoutMs = 1000, sysv?: { key?: number }): ChannelDetails {
  const channel = normalizeName(name);
  if (sysv !== undefined) return inspectSysv(channel, sysv.key ?? native.sysvKeyOfName(channel), timeoutMs);
  try {
    return inspectPosix(channel, timeoutMs);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_CHANNEL_NOT_FOUND') throw error;
    // not a POSIX channel: a System V one under the key derived from its name?
    try {
      return inspectSysv(channel, native.sysvKeyOfName(channel), timeoutMs);
    } catch {
      throw error;
    }
  }
}

/**
 * Whether `shmchan rm` may remove the file behind a POSIX name: it is a regular
 * file, and empty (its creator died right after shm_open), or big enough for a
 * channel and starting with shmchan's magic or with zeros (a creator that died
 * before publishing the magic). This keeps `rm` away from other programs'
 * segments and semaphores, and from FIFOs, symbolic links and directories that
 * anyone may put in /dev/shm (opened without O_NONBLOCK, a FIFO would block for
 * ever). A file that cannot be read answers true, so that the unlink itself
 * reports the problem.
 */
export function posixNameLooksLikeChannel(name: string): boolean {
  const path = `${POSIX_DIR}/${name.startsWith('/') ? name.slice(1) : name}`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    return (error as { code?: string }).code !== 'ELOOP'; // ELOOP: a symbolic link
  }
  try {
    const head = Buffer.alloc(4);
    const stat = fstatSync(fd);
    if (!stat.isFile()) return false;
    const size = stat.size;
    if (size === 0) return true;
    if (size < L.HEADER_SIZE + L.MIN_CAPACITY || readSync(fd, head, 0, 4, 0) < 4) return false;
    const magic = head.readUInt32LE(0);
    return magic === L.MAGIC || magic === 0;
  } catch {
    return true;
  } finally {
    closeSync(fd);
  }
}
