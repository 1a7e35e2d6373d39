/* What the example programs share: reading the command line, reporting a failure,
 * and, for the receiving ones, printing a message as one line. On an msgpack
 * channel a message that is a msgpack string is printed as its text (what a Node
 * producer's `send('text')` or examples/c/producer sends); anything else as its
 * bytes; with hex, every message as hex (an empty one as an empty line). */
#ifndef SHMCHAN_EXAMPLE_H
#define SHMCHAN_EXAMPLE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmchan.h"

/* The command line: NAME, then options. */
typedef struct example_args {
  const char *name;
  shmchan_options_t options; /* backend, open_timeout_ms, from; mode and capacity for --create */
  int create, raw, hex, keep_open;
} example_args_t;

/* The options a program takes besides --sysv and --timeout MS, which all take. */
enum {
  TAKES_CREATE = 1,    /* --create, --mpsc, --capacity BYTES, --raw */
  TAKES_HEX = 2,       /* --hex */
  TAKES_OLDEST = 4,    /* --oldest */
  TAKES_KEEP_OPEN = 8, /* --keep-open */
};

/* Reads `NAME [options]` into *args, the options `takes` names and no others.
 * 0, or the exit status 2 after printing "usage: USAGE" on stderr. */
static inline int parse_args(int argc, char **argv, unsigned takes, const char *usage, example_args_t *args) {
  *args = (example_args_t){0};
  int ok = argc >= 2 && argv[1][0] != '-';
  if (ok) args->name = argv[1];
  for (int i = 2; ok && i < argc; i++) {
    const char *arg = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(arg, "--sysv") == 0) args->options.backend = SHMCHAN_BACKEND_SYSV;
    else if (strcmp(arg, "--timeout") == 0 && has_value) args->options.open_timeout_ms = atoi(argv[++i]);
    else if ((takes & TAKES_CREATE) && strcmp(arg, "--create") == 0) args->create = 1;
    else if ((takes & TAKES_CREATE) && strcmp(arg, "--mpsc") == 0) args->options.mode = SHMCHAN_MODE_MPSC;
    else if ((takes & TAKES_CREATE) && strcmp(arg, "--capacity") == 0 && has_value) args->options.capacity = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if ((takes & TAKES_CREATE) && strcmp(arg, "--raw") == 0) args->raw = 1;
    else if ((takes & TAKES_HEX) && strcmp(arg, "--hex") == 0) args->hex = 1;
    else if ((takes & TAKES_OLDEST) && strcmp(arg, "--oldest") == 0) args->options.from = SHMCHAN_FROM_OLDEST;
    else if ((takes & TAKES_KEEP_OPEN) && strcmp(arg, "--keep-open") == 0) args->keep_open = 1;
    else ok = 0;
  }
  if (ok) return 0;
  fprintf(stderr, "usage: %s\n", usage);
  return 2;
}

/* "PROGRAM: channel 'NAME': WHAT: the error" on stderr; the exit status 1. */
static inline int fail_with(const char *program, const char *name, const char *what, int rc) {
  fprintf(stderr, "%s: channel '%s': %s: %s\n", program, name, what, strerror(-rc));
  return 1;
}

/* The text of a msgpack string message (fixstr, str8/16/32), or NULL. */
static inline const uint8_t *msgpack_str(const uint8_t *m, size_t size, size_t *len) {
  if (size < 1) return NULL;
  size_t header, n;
  if ((m[0] & 0xe0) == 0xa0) header = 1, n = m[0] & 0x1f;
  else if (m[0] == 0xd9 && size >= 2) header = 2, n = m[1];
  else if (m[0] == 0xda && size >= 3) header = 3, n = (size_t)m[1] << 8 | m[2];
  else if (m[0] == 0xdb && size >= 5) header = 5, n = (size_t)m[1] << 24 | (size_t)m[2] << 16 | (size_t)m[3] << 8 | m[4];
  else return NULL;
  if (header + n != size) return NULL;
  *len = n;
  return m + header;
}

/* After the receive loop: frees what it used, and turns its last result into the
 * exit status (0 for the end of the stream). */
static inline int finish(const char *program, const char *name, shmchan_t *ch, uint8_t *buf, int last) {
  free(buf);
  shmchan_close(ch);
  if (last != -ESHUTDOWN) return fail_with(program, name, "receive", last);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* Creates the channel (--create) or opens it. 0, or the exit status after saying
 * what failed. */
static inline int create_or_open(const char *program, const example_args_t *args, shmchan_t **ch) {
  int rc = args->create ? shmchan_create(ch, args->name, &args->options) : shmchan_open(ch, args->name, &args->options);
  return rc == 0 ? 0 : fail_with(program, args->name, args->create ? "create" : "open", rc);
}

/* Opens a channel that must be of `mode` (0: any), and a buffer that takes any of
 * its messages. 0, or the exit status after saying what failed. */
static inline int open_receiver(const char *program, const char *name, const shmchan_options_t *options, uint32_t mode, shmchan_t **ch,
                         uint8_t **buf) {
  int rc = shmchan_open(ch, name, options);
  if (rc == 0 && mode != 0 && shmchan_mode(*ch) != mode) rc = -EPROTOTYPE;
  if (rc == 0 && (*buf = malloc(shmchan_max_message_size(*ch))) == NULL) rc = -ENOMEM;
  if (rc == 0) return 0;
  shmchan_close(*ch);
  return fail_with(program, name, "open", rc);
}

static inline void print_message(const uint8_t *buf, size_t size, int msgpack, int hex) {
  size_t len;
  const uint8_t *text = msgpack && !hex ? msgpack_str(buf, size, &len) : NULL;
  if (hex) {
    for (size_t i = 0; i < size; i++) printf("%02x", buf[i]);
  } else if (text != NULL) {
    fwrite(text, 1, len, stdout);
  } else {
    fwrite(buf, 1, size, stdout);
  }
  putchar('\n');
}

#endif
