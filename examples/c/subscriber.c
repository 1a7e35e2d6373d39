/*
 * subscriber: a broadcast channel -> stdout until the end of the stream, one line
 * per message (printed as examples/c/consumer prints them). Every subscriber of
 * the channel, C or Node, gets every message.
 *
 *   subscriber NAME [--oldest] [--sysv] [--hex] [--timeout MS]
 *
 * It subscribes at once and says so on stderr ("subscribed"); from then on it gets
 * every message sent, and with --oldest also those still in the ring. The channel
 * must exist (created by Node with mode 'broadcast'), or appear within --timeout
 * milliseconds. On a channel with overflow 'overwrite' a subscriber that falls a
 * lap behind loses messages: it says how many on stderr and goes on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "example.h"
#include "shmchan.h"

int main(int argc, char **argv) {
  example_args_t args;
  int rc = parse_args(argc, argv, TAKES_OLDEST | TAKES_HEX, "subscriber NAME [--oldest] [--sysv] [--hex] [--timeout MS]", &args);
  if (rc != 0) return rc;

  shmchan_t *ch = NULL;
  uint8_t *buf;
  rc = open_receiver("subscriber", args.name, &args.options, SHMCHAN_MODE_BROADCAST, &ch, &buf);
  if (rc != 0) return rc;
  int msgpack = shmchan_codec(ch) == SHMCHAN_CODEC_MSGPACK;
  uint32_t cap = shmchan_max_message_size(ch);
  /* the first receiving call subscribes: a try, so that "subscribed" comes at once */
  int n = shmchan_try_receive(ch, buf, cap);
  if (n >= 0 || n == -EAGAIN) fprintf(stderr, "subscribed\n");
  for (;; n = shmchan_receive(ch, buf, cap, -1)) {
    if (n >= 0) print_message(buf, (size_t)n, msgpack, args.hex);
    else if (n == -ENOBUFS) fprintf(stderr, "subscriber: lapped: %llu messages lost so far\n", (unsigned long long)shmchan_messages_lost(ch));
    else if (n != -EAGAIN) break;
  }
  return finish("subscriber", args.name, ch, buf, n);
}
