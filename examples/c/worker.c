/*
 * worker: one of the competing consumers of an mpmc channel (a work queue): it
 * prints every message it takes as one line (as examples/c/consumer prints them)
 * until the end of the stream. Run several, C or Node: each message goes to
 * exactly one of them, and a message whose worker is killed before its receive
 * returned goes to another.
 *
 *   worker NAME [--sysv] [--hex] [--timeout MS]
 *
 * The channel must exist (created by Node with mode 'mpmc'), or appear within
 * --timeout milliseconds.
 */
#include <stdint.h>

#include "example.h"
#include "shmchan.h"

int main(int argc, char **argv) {
  example_args_t args;
  int rc = parse_args(argc, argv, TAKES_HEX, "worker NAME [--sysv] [--hex] [--timeout MS]", &args);
  if (rc != 0) return rc;

  shmchan_t *ch = NULL;
  uint8_t *buf;
  rc = open_receiver("worker", args.name, &args.options, SHMCHAN_MODE_MPMC, &ch, &buf);
  if (rc != 0) return rc;
  int msgpack = shmchan_codec(ch) == SHMCHAN_CODEC_MSGPACK, n;
  uint32_t cap = shmchan_max_message_size(ch);
  while ((n = shmchan_receive(ch, buf, cap, -1)) >= 0) print_message(buf, (size_t)n, msgpack, args.hex);
  return finish("worker", args.name, ch, buf, n);
}
