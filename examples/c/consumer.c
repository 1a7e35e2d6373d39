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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "shmchan.h"

static int usage(void) {
  fprintf(stderr, "usage: consumer NAME [--create [--mpsc] [--capacity BYTES] [--raw]] [--sysv] [--hex] [--timeout MS]\n");
  return 2;
}

static int fail(const char *name, const char *what, int rc) { return fail_with("consumer", name, what, rc); }

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') return usage();
  const char *name = argv[1];
  shmchan_options_t options = {0};
  int create = 0, hex = 0;
  options.codec = SHMCHAN_CODEC_MSGPACK;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--create") == 0) create = 1;
    else if (strcmp(argv[i], "--mpsc") == 0) options.mode = SHMCHAN_MODE_MPSC;
    else if (strcmp(argv[i], "--sysv") == 0) options.backend = SHMCHAN_BACKEND_SYSV;
    else if (strcmp(argv[i], "--raw") == 0) options.codec = SHMCHAN_CODEC_RAW;
    else if (strcmp(argv[i], "--hex") == 0) hex = 1;
    else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc) options.capacity = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) options.open_timeout_ms = atoi(argv[++i]);
    else return usage();
  }

  shmchan_t *ch;
  int rc = create ? shmchan_create(&ch, name, &options) : shmchan_open(&ch, name, &options);
  if (rc != 0) return fail(name, create ? "create" : "open", rc);
  int msgpack = shmchan_codec(ch) == SHMCHAN_CODEC_MSGPACK;
  uint32_t cap = shmchan_max_message_size(ch);
  uint8_t *buf = malloc(cap);
  int n = buf == NULL ? -ENOMEM : 0;
  while (n >= 0 && (n = shmchan_receive(ch, buf, cap, -1)) >= 0) print_message(buf, (size_t)n, msgpack, hex);
  return finish("consumer", name, ch, buf, n);
}
