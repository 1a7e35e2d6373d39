/*
 * producer: stdin -> channel, one message per line, like a spooler client.
 *
 *   producer NAME [--create [--mpsc] [--capacity BYTES]] [--sysv] [--raw] [--keep-open] [--timeout MS]
 *
 * Each line, without its newline, is sent as a msgpack string, so Node peers
 * (and `shmchan recv NAME --lines`) receive it as a JavaScript string; --raw
 * sends the line's bytes as they are (for a raw channel). At end of input it
 * ends the stream, unless --keep-open: several producers of an mpsc channel
 * leave the ending to the last one. --create creates the channel (an msgpack
 * one, or raw with --raw) and leaves it for the consumer to remove; otherwise
 * the channel must exist, or appear within --timeout milliseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "shmchan.h"

/* The msgpack header of a string of len bytes (str8/16/32 or fixstr); its size. */
static size_t msgpack_str_header(uint8_t *out, size_t len) {
  if (len < 32) {
    out[0] = (uint8_t)(0xa0 | len);
    return 1;
  }
  if (len <= 0xff) {
    out[0] = 0xd9;
    out[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    out[0] = 0xda;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    return 3;
  }
  out[0] = 0xdb;
  for (int i = 0; i < 4; i++) out[1 + i] = (uint8_t)(len >> (24 - 8 * i));
  return 5;
}

int main(int argc, char **argv) {
  example_args_t args;
  int rc = parse_args(argc, argv, TAKES_CREATE | TAKES_KEEP_OPEN, "producer NAME [--create [--mpsc] [--capacity BYTES]] [--sysv] [--raw] [--keep-open] [--timeout MS]", &args);
  if (rc != 0) return rc;
  const char *name = args.name;
  int raw = args.raw;
  args.options.codec = raw ? SHMCHAN_CODEC_RAW : SHMCHAN_CODEC_MSGPACK;
  args.options.unlink_on_close = -1; /* the consumer removes the channel */

  shmchan_t *ch;
  if ((rc = create_or_open("producer", &args, &ch)) != 0) return rc;

  char *line = NULL;
  size_t line_cap = 0;
  uint8_t *message = NULL;
  ssize_t n;
  const char *failed = NULL;
  while (failed == NULL && (n = getline(&line, &line_cap, stdin)) >= 0) {
    size_t len = (size_t)n;
    if (len > 0 && line[len - 1] == '\n') len--;
    uint8_t *out = (uint8_t *)line;
    size_t size = len;
    if (!raw) {
      uint8_t *grown = realloc(message, len + 5);
      if (grown == NULL) {
        rc = -ENOMEM, failed = "encode";
        break;
      }
      message = grown;
      size_t header = msgpack_str_header(message, len);
      memcpy(message + header, line, len);
      out = message;
      size = header + len;
    }
    if ((rc = shmchan_send(ch, out, size, -1)) != 0) failed = "send";
  }
  if (failed == NULL && !args.keep_open && (rc = shmchan_end(ch)) != 0) failed = "end";
  free(line);
  free(message);
  shmchan_close(ch);
  if (failed != NULL) return fail_with("producer", name, failed, rc);
  return 0;
}
