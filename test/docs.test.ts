// The documentation's examples run as written, against the built package, and
// print what the page says; every relative link in the documentation leads to a
// file that exists (and to a heading that exists, for a link with an anchor).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { cleanupChannels, packageRoot, sysvKeyOf, uniqueName } from './helpers';
import { findNatsServer, NatsServer } from './nats-server';

afterEach(() => cleanupChannels());

const read = (file: string) => readFileSync(path.join(packageRoot, file), 'utf8');

/** Runs JavaScript as an ES module in a fresh node whose working directory is the
 * package root, so that `import ... from 'shmchan'` is this package. */
function runModule(code: string, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

interface Example {
  code: string;
  output: string;
}

/** Each ```js block followed by a ```text block: the code and what it prints. A
 * ```js block without its output would go unchecked, so there must be none. */
function examplesOf(markdown: string): Example[] {
  const examples = [...markdown.matchAll(/```js\n([\s\S]*?)```\n\n```text\n([\s\S]*?)```/g)].map(([, code, output]) => ({ code, output }));
  expect(examples.length, 'every ```js block is followed by a ```text block of its output').toBe(markdown.match(/```js\n/g)?.length ?? 0);
  return examples;
}

/**
 * The example with each channel it names (Channel.create/open/unlink) given a name
 * of this test run, wherever the name stands on its own (a quoted string, a path
 * in /dev/shm), so that parallel runs on one host never meet.
 */
function withUniqueNames(code: string): { code: string; names: string[] } {
  const original = [...new Set([...code.matchAll(/Channel\.(?:create|open|unlink)\('([^']+)'/g)].map((m) => m[1]))];
  let renamed = code;
  const names: string[] = [];
  // longest first, so that 'orders' never matches inside 'orders-in'
  for (const name of original.sort((a, b) => b.length - a.length)) {
    const unique = uniqueName(name);
    names.push(unique);
    renamed = renamed.replace(new RegExp(`(?<![\\w.-])${name.replace(/[.-]/g, '\\$&')}(?![\\w.-])`, 'g'), unique);
  }
  return { code: renamed, names };
}

async function expectRunsAsShown(example: Example, edit: (code: string) => string = (code) => code): Promise<void> {
  const { code, names } = withUniqueNames(example.code);
  expect(names.length, 'an example names the channels it uses').toBeGreaterThan(0);
  const result = await runModule(edit(code));
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toBe(example.output);
  // each example cleans up its channels
  for (const name of names) expect(existsSync(`/dev/shm/${name}`), `/dev/shm/${name} left behind`).toBe(false);
}

describe('docs/guarantees.md', () => {
  const examples = examplesOf(read('docs/guarantees.md'));

  it('has examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  it.each(examples.map((example, i) => [i + 1, example] as const))('example %i runs and prints what the page shows', async (_, example) => {
    await expectRunsAsShown(example);
  });
});

describe('docs/protocol.md', () => {
  it("derives a System V key from a name as Channel.create({ backend: 'sysv' }) does", async () => {
    const block = /```js\n([\s\S]*?)```/.exec(read('docs/protocol.md'))![1];
    expect(block).toContain("Buffer.from('orders')");
    const name = uniqueName('protocol-key');
    const { code, stdout, stderr } = await runModule(`${block.replace("'orders'", `'${name}'`)}\nconsole.log(key);`);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const channel = Channel.create(name, { backend: 'sysv' });
    try {
      expect(Number(stdout)).toBe(channel.key);
      expect(Number(stdout)).toBe(sysvKeyOf(name));
    } finally {
      channel.close();
    }
  });
});

const natsServer = findNatsServer();
if (natsServer === undefined)
  console.warn('\n*** SKIPPED: the examples of docs/nats.md need nats-server, which is not installed (.ci/run installs it with apt-get) ***\n');

describe.skipIf(natsServer === undefined)('docs/nats.md', () => {
  const examples = examplesOf(read('docs/nats.md'));
  let server: NatsServer;

  beforeAll(async () => {
    server = await NatsServer.start(natsServer!);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('has examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(1);
  });

  it.each(examples.map((example, i) => [i + 1, example] as const))(
    'example %i runs against a nats-server and prints what the page shows',
    async (_, example) => {
      expect(example.code).toContain("'nats://127.0.0.1:4222'");
      // the subject is named after a channel, so it is unique to this run as well
      await expectRunsAsShown(example, (code) => code.replaceAll("'nats://127.0.0.1:4222'", `'${server.url}'`));
    },
  );
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown file's headings (code blocks left out), with GitHub's
 * -1, -2 suffixes for repeated headings. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, heading] of withoutFences(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Markdown without fenced code blocks, where a # starts no heading. */
function withoutFences(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** Markdown without fenced code blocks and code spans, where brackets are not links. */
function withoutCode(markdown: string): string {
  return withoutFences(markdown).replace(/`[^`\n]*`/g, '');
}

/** Written in another worktree at the same time as these pages; until it lands,
 * a link to it may point at nothing. Once it exists, it is checked like any file. */
const writtenElsewhere = new Set(['docs/c-api.md']);

describe('links', () => {
  const pages = ['README.md', 'bench/README.md', ...readdirSync(path.join(packageRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it.each(pages)('every relative link in %s leads to a file and heading that exist', (page) => {
    const markdown = read(page);
    const broken: string[] = [];
    let links = 0;
    for (const [, target] of withoutCode(markdown).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      links++;
      const [file, anchor] = target.split('#');
      const resolved = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
      if (!existsSync(path.join(packageRoot, resolved))) {
        if (!writtenElsewhere.has(resolved)) broken.push(`${target}: no file ${resolved}`);
        continue;
      }
      if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(anchor))
        broken.push(`${target}: no heading #${anchor} in ${resolved}`);
    }
    expect(broken).toEqual([]);
    expect(links).toBeGreaterThan(0);
  });
});
