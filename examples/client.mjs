// Terminal 2: sends each argument as a request, all at once, and prints the replies.
import { Client } from 'shmchan';

const client = await Client.connect('greeter', { timeout: 10_000 }); // waits up to 10 s for the service
const replies = await Promise.all(process.argv.slice(2).map((who) => client.request({ who }, { timeout: 5000 })));
for (const reply of replies) console.log(reply.greeting);
client.close();
