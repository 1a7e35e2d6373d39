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
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "shmchan.h"

static int usage(void) {
  fprintf(stderr, "usage: worker NAME [--sysv] [--hex] [--timeout MS]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') return usage();
  const char *name = argv[1];
  shmchan_options_t options = {0};
  int hex = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--sysv") == 0) options.backend = SHMCHAN_BACKEND_SYSV;
    else if (strcmp(argv[i], "--hex") == 0) hex = 1;
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) options.open_timeout_ms = atoi(argv[++i]);
    else return usage();
  }

  shmchan_t *ch = NULL;
  uint8_t *buf;
  int rc = open_receiver("worker", name, &options, SHMCHAN_MODE_MPMC, &ch, &buf);
  if (rc != 0) return rc;
  int msgpack = shmchan_codec(ch) == SHMCHAN_CODEC_MSGPACK, n;
  uint32_t cap = shmchan_max_message_size(ch);
  while ((n = shmchan_receive(ch, buf, cap, -1)) >= 0) print_message(buf, (size_t)n, msgpack, hex);
  return finish("worker", name, ch, buf, n);
}
