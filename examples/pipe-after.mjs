// The same through a shmchan channel: the child writes to a stream over it.
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { createReadStream, createWriteStream } from 'shmchan';

if (process.argv[2] === 'child') {
  const out = createWriteStream(process.argv[3]);           // opens the channel, waiting for it
  for (let i = 1; i <= 3; i++) out.write(`line ${i}\n`);
  out.end();                                                 // end of stream
} else {
  const name = `lines-${process.pid}`;
  const input = createReadStream(name, { create: true });    // creates it; removes it at the end
  spawn(process.execPath, [process.argv[1], 'child', name], { stdio: 'inherit' });
  await pipeline(input, process.stdout);
}
