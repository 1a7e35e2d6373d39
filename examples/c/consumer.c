/*
 * consumer: channel -> stdout until the end of the stream, one line per message.
 *
 *   consumer NAME [--create [--mpsc] [--capacity BYTES] [--raw]] [--sysv] [--hex] [--timeout MS]
 *
 * On an msgpack channel a message that is a msgpack string is printed as its
 * text (what a Node producer's `send('text')` or examples/c/producer sends);
 * anything else is printed as its bytes. --hex prints every message as hex
 * instead (an empty message as an empty line). --create creates the channel
 * (msgpack, or raw with --raw) and removes it at exit; otherwise the channel
 * must exist, or appear within --timeout milliseconds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "example.h"
#include "shmchan.h"

int main(int argc, char **argv) {
  example_args_t args;
  int rc = parse_args(argc, argv, TAKES_CREATE | TAKES_HEX, "consumer NAME [--create [--mpsc] [--capacity BYTES] [--raw]] [--sysv] [--hex] [--timeout MS]", &args);
  if (rc != 0) return rc;
  const char *name = args.name;
  args.options.codec = args.raw ? SHMCHAN_CODEC_RAW : SHMCHAN_CODEC_MSGPACK;

  shmchan_t *ch;
  if ((rc = create_or_open("consumer", &args, &ch)) != 0) return rc;
  int msgpack = shmchan_codec(ch) == SHMCHAN_CODEC_MSGPACK;
  uint32_t cap = shmchan_max_message_size(ch);
  uint8_t *buf = malloc(cap);
  int n = buf == NULL ? -ENOMEM : 0;
  while (n >= 0 && (n = shmchan_receive(ch, buf, cap, -1)) >= 0) print_message(buf, (size_t)n, msgpack, args.hex);
  return finish("consumer", name, ch, buf, n);
}
