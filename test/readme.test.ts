// The README's examples run as written: the ten-line example (examples/hello.mjs)
// and the "Streams: replace a pipe" examples.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { cleanupChannels, packageRoot, uniqueName } from './helpers';

afterEach(() => cleanupChannels());

const readme = readFileSync(path.join(packageRoot, 'README.md'), 'utf8');

/** The README from one heading to the next one given; both must be there. */
function between(start: string, end: string): string {
  const from = readme.indexOf(start);
  const to = readme.indexOf(end, from);
  expect(from, `README heading '${start}'`).toBeGreaterThan(-1);
  expect(to, `README heading '${end}' after '${start}'`).toBeGreaterThan(from);
  return readme.slice(from, to);
}

const section = between('### Streams: replace a pipe', '### System V');

/** When each file of dist/ was last written. */
function distTimes(): Record<string, number> {
  const dist = path.join(packageRoot, 'dist');
  const files = readdirSync(dist, { recursive: true, encoding: 'utf8' });
  return Object.fromEntries(files.map((file) => [file, statSync(path.join(dist, file)).mtimeMs]));
}

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

it('shows examples/hello.mjs as it is, and it prints the order it sent and removes its channel', async () => {
  const hello = readFileSync(path.join(packageRoot, 'examples', 'hello.mjs'), 'utf8');
  expect(between('## Example', '## Messaging patterns')).toContain('```js\n' + hello.trimEnd() + '\n```');
  // The file's own code, under a name of its own so that parallel runs on one host do not meet.
  const name = uniqueName('readme-orders');
  expect(hello).toContain("'orders'");
  const { code, stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', hello.replaceAll("'orders'", `'${name}'`)]);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).toMatch(/^\{ id: 1, item: 'coffee', at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \}\n$/);
  expect(existsSync(`/dev/shm/${name}`)).toBe(false);
});

it('shows examples/pipe-before.mjs and pipe-after.mjs as they are, and they print the same', async () => {
  for (const file of ['pipe-before.mjs', 'pipe-after.mjs'])
    expect(section).toContain(readFileSync(path.join(packageRoot, 'examples', file), 'utf8').trimEnd());
  const before = await run(process.execPath, ['examples/pipe-before.mjs']);
  const after = await run(process.execPath, ['examples/pipe-after.mjs']);
  expect(before).toMatchObject({ code: 0, stdout: 'line 1\nline 2\nline 3\n' });
  expect(after).toMatchObject({ code: 0, stdout: before.stdout, stderr: '' });
});

it('runs the shell example: the pipeline and its two shmchan halves print the same hash', async () => {
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
  expect(block).toContain('npx shmchan send numbers --create &');
  // A name of its own, so that parallel runs on one host do not meet. And the
  // checkout's own bin where a user's project has node_modules/.bin/shmchan: in
  // the package's own checkout, npx installs the package into its cache the first
  // time, which runs its prepare script here and rewrites dist/ while other test
  // files load it.
  const script = block
    .replaceAll(' numbers', ` ${uniqueName('readme-numbers')}`)
    .replaceAll('npx shmchan', `"${process.execPath}" bin/shmchan.js`);
  const before = distTimes();
  const { code, stdout, stderr } = await run('bash', ['-c', script]);
  expect(code, stderr).toBe(0);
  expect(distTimes(), 'dist/ was rewritten while the example ran').toEqual(before);
  const hashes = stdout.trim().split('\n');
  expect(hashes).toHaveLength(2);
  expect(hashes[0]).toMatch(/^[0-9a-f]{64}  -$/);
  expect(hashes[1]).toBe(hashes[0]);
});

it('runs examples/service.mjs and examples/client.mjs: the client prints the greetings, Ctrl-C stops the service cleanly', async () => {
  const name = uniqueName('readme-greeter');
  const source = (file: string) => {
    const text = readFileSync(path.join(packageRoot, 'examples', file), 'utf8');
    expect(text).toContain("'greeter'");
    return text.replaceAll("'greeter'", `'${name}'`);
  };
  expect(readme).toContain('[examples/service.mjs](examples/service.mjs)');
  const service = spawn(process.execPath, ['--input-type=module', '-e', source('service.mjs')], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  service.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => service.on('close', resolve));
  try {
    await new Promise<void>((resolve) => service.stdout.setEncoding('utf8').on('data', (text: string) => text.includes('serving') && resolve()));
    const client = await run(process.execPath, ['--input-type=module', '-e', source('client.mjs'), 'examples/client.mjs', 'ada', 'grace'] /* -e: argv[1] stands for the script */);
    expect(client).toMatchObject({ code: 0, stdout: 'hello, ada\nhello, grace\n', stderr: '' });
    service.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  } finally {
    service.kill('SIGKILL');
  }
});
