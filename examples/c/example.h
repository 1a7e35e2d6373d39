/* What the example consumers share: reporting a failure, and printing a message
 * as one line. On an msgpack channel a message that is a msgpack string is printed as its text
 * (what a Node producer's `send('text')` or examples/c/producer sends); anything
 * else as its bytes; with hex, every message as hex (an empty one as an empty line). */
#ifndef SHMCHAN_EXAMPLE_H
#define SHMCHAN_EXAMPLE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* "PROGRAM: channel 'NAME': WHAT: the error" on stderr; the exit status 1. */
static int fail_with(const char *program, const char *name, const char *what, int rc) {
  fprintf(stderr, "%s: channel '%s': %s: %s\n", program, name, what, strerror(-rc));
  return 1;
}

/* The text of a msgpack string message (fixstr, str8/16/32), or NULL. */
static const uint8_t *msgpack_str(const uint8_t *m, size_t size, size_t *len) {
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

static void print_message(const uint8_t *buf, size_t size, int msgpack, int hex) {
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
