// A real nats-server with JetStream for the tests: on a free loopback port, with
// a temporary store directory, restartable on the same port and store.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { cleanupChannels, killFixtures } from './helpers';

/** The nats-server binary (NATS_SERVER, else the usual places), or undefined when
 * it is not installed. */
export function findNatsServer(): string | undefined {
  const candidates = process.env.NATS_SERVER !== undefined ? [process.env.NATS_SERVER] : ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server'];
  for (const candidate of candidates) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class NatsServer {
  private child: ChildProcess | undefined;
  private log = '';
  readonly storeDir = mkdtempSync(path.join(tmpdir(), 'shmchan-nats-'));

  private constructor(
    private readonly binary: string,
    readonly port: number,
  ) {}

  static async start(binary: string): Promise<NatsServer> {
    const server = new NatsServer(binary, await freePort());
    await server.launch();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    const child = spawn(this.binary, ['-js', '-sd', this.storeDir, '-p', String(this.port), '-a', '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (chunk) => (this.log += chunk));
    child.stderr!.on('data', (chunk) => (this.log += chunk));
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}):\n${this.log}`);
      if (this.log.includes('Server is ready') && (await accepting(this.port))) return;
      if (i > 400) throw new Error(`nats-server did not start:\n${this.log}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Stops the server (SIGTERM: it shuts down cleanly, as in a restart for maintenance). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // a frozen server (a failed test) must run to shut down
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Freezes the server (SIGSTOP): its connections stay open and nothing answers. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Lets a frozen server run again (SIGCONT). */
  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** Stops it and starts it again on the same port with the same store. */
  async restart(): Promise<void> {
    await this.stop();
    this.log = '';
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

/** The nats-server binary, or undefined after a warning that `tests` are skipped. */
export function natsServerFor(tests: string): string | undefined {
  const binary = findNatsServer();
  if (binary === undefined) console.warn(`\n*** SKIPPED: ${tests} need nats-server, which is not installed (.ci/run installs it with apt-get) ***\n`);
  return binary;
}

/**
 * In a describe block: one nats-server for its tests, started before them and
 * disposed of after them; after each test, the fixtures are killed and the channels
 * removed. `server` and `url` are valid inside the tests.
 */
export function useNatsServer(binary: string): { readonly server: NatsServer; readonly url: string } {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    server = await NatsServer.start(binary);
  });
  afterAll(async () => {
    await server?.dispose();
  });
  afterEach(() => {
    killFixtures();
    cleanupChannels();
  });
  return {
    get server() {
      return server!;
    },
    get url() {
      return server!.url;
    },
  };
}
