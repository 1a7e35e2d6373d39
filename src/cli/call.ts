// shmchan call: one request to a service, its reply printed as JSON.
import { Client } from '../client';
import { UsageError, expectPositionals, out, type Command } from './command';

export const call: Command = {
  synopsis: 'call NAME JSON [--timeout MS] [--sysv]   one request to a Service; prints the reply as JSON',
  help: `usage: shmchan call NAME JSON [--timeout MS] [--sysv]

Sends JSON (parsed: a number, a string in quotes, an object...) as one request
to the service NAME and prints its reply as JSON on one line. A failed request
(the handler threw: ERR_REMOTE), no reply within the timeout, or a service with
no worker left is an error: its message on stderr, exit status 1.

  --timeout MS   how long to wait for the service to appear and for the reply
                 (default: a missing service is an error at once, and the reply
                 is awaited as long as it takes)
  --sysv         a System V service (created with backend 'sysv')
  -h, --help     show this help
`,
  options: { timeout: { type: 'string' }, sysv: { type: 'boolean' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 2, positionals.length === 0 ? 'NAME and JSON' : 'JSON');
    const [name, json] = positionals;
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (error) {
      throw new UsageError(`JSON: ${(error as Error).message}`);
    }
    let timeout: number | undefined;
    if (values.timeout !== undefined) {
      timeout = Number(values.timeout);
      if (!Number.isSafeInteger(timeout) || timeout < 0) throw new UsageError(`--timeout takes milliseconds (a whole number), got '${String(values.timeout)}'`);
    }
    const client = await Client.connect(name, { timeout: timeout ?? 0, backend: values.sysv ? 'sysv' : 'posix' });
    try {
      const reply = await client.request(value, timeout === undefined ? undefined : { timeout });
      out(`${JSON.stringify(reply) ?? 'null'}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
