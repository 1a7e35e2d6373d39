// Terminal 1: creates the channel and prints what arrives until the writer ends it.
import { Channel } from 'shmchan';

const channel = Channel.create('notes');
console.log("waiting for messages on 'notes' (run examples/writer.mjs in another terminal)");
for await (const note of channel) console.log('got', note);
console.log('the writer ended the stream');
channel.close();
