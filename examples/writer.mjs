// Terminal 2: opens the existing channel, sends each argument, then ends the stream.
import { Channel } from 'shmchan';

const channel = Channel.open('notes', { timeout: 10_000 });
for (const text of process.argv.slice(2)) await channel.send({ text, from: process.pid, at: new Date() });
channel.end();
channel.close();
