// Terminal 1: a service that answers each request; run it again in more terminals
// (it opens the service as one more worker) to share the requests. Ctrl-C stops it.
import { Service } from 'shmchan';

const name = 'greeter';
let service;
try {
  service = Service.create(name);
} catch (error) {
  if (error.code !== 'ERR_CHANNEL_EXISTS') throw error;
  service = Service.open(name); // another terminal created it: be one more worker
}
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
console.log(`serving '${name}' (run examples/client.mjs in another terminal)`);
await service.serve(({ who }) => ({ greeting: `hello, ${who}`, from: process.pid }), { signal: stop.signal });
service.close();
