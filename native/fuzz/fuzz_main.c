/*
 * A driver for fuzz_segment.c where libFuzzer is not available (gcc): feeds it
 * seeded random programs for a bounded time, or replays the files it is given.
 *
 *   fuzz_segment_loop [-seconds N] [-runs N] [-seed S] [FILE...]
 *
 * It stops after -seconds or after -runs inputs, whichever comes first.
 * The same seed gives the same inputs, so a failure reproduces with its seed
 * (printed at the start). The sanitizers stop the process at the first error.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t state;
static uint64_t next(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

static int replay(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return perror(path), 1;
  static uint8_t buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  return 0;
}

int main(int argc, char **argv) {
  double seconds = 10;
  unsigned long max_runs = 0; /* 0: no limit */
  uint64_t seed = (uint64_t)time(NULL);
  int files = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "-runs") == 0 && i + 1 < argc) max_runs = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "-seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    else if (replay(argv[i]) == 0) files++;
  }
  if (files > 0) return 0;
  printf("fuzz_segment: seed %llu, %.0f s\n", (unsigned long long)seed, seconds);
  fflush(stdout);
  state = seed | 1;
  static uint8_t input[4096];
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  unsigned long runs = 0;
  for (;;) {
    size_t n = 1 + next() % sizeof input;
    for (size_t i = 0; i < n; i++) {
      uint64_t r = next();
      /* mostly small numbers: opcodes, short lengths and picks hit the paths that matter */
      input[i] = (uint8_t)((r & 3) == 0 ? r >> 8 : (r >> 8) % 16);
    }
    /* byte 0 picks the ring, the mode and the header: each mode as often as the
     * others (bits 3 and 6), a foreign header or a short mapping a quarter of the time */
    uint64_t r = next();
    input[0] = (uint8_t)((r >> 8) & ((r & 3) != 0 ? 0xcf : 0xff));
    LLVMFuzzerTestOneInput(input, n);
    runs++;
    if (runs == max_runs) break;
    if ((runs & 255) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 >= seconds) break;
    }
  }
  printf("fuzz_segment: %lu runs, no sanitizer report\n", runs);
  return 0;
}
