// Terminal 2: opens the channel once the reader has created it, sends each
// argument, then ends the stream.
import { Channel } from 'shmchan';

const channel = await Channel.connect('notes', { timeout: 10_000 }); // waits up to 10 s for the reader
for (const text of process.argv.slice(2)) await channel.send({ text, from: process.pid, at: new Date() });
channel.end();
channel.close();
