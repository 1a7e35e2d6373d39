import { Channel } from 'shmchan';

const producer = Channel.create('orders');            // creates /dev/shm/orders (mode 0600)
const consumer = Channel.open('orders');              // usually in another process
await producer.send({ id: 1, item: 'coffee', at: new Date() });
producer.end();                                       // end of stream
for await (const order of consumer) console.log(order);
consumer.close();
producer.close();                                     // the creator removes the name
