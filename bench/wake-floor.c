/* The floor under a wake-up, in C, with no Node and no shmchan: two processes,
 * the parent pauses at least 1 ms before each round trip so that the child has
 * gone to sleep, then wakes it and waits for its answer. Measured three ways in
 * one run, alternated: a futex in shared memory (both sides sleep on it), the
 * same with the parent polling for the answer instead of sleeping (one sleeping
 * side only), and a unix socketpair (both sides blocked in read). p50 / p99 in µs.
 *
 *   cc -O2 -o /tmp/wake-floor bench/wake-floor.c && /tmp/wake-floor [samples]
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void futex_wait(uint32_t *word, uint32_t expected) {
  while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == expected) syscall(SYS_futex, word, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static void futex_post(uint32_t *word) {
  __atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int by_value(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void report(const char *label, int64_t *samples, int n) {
  qsort(samples, (size_t)n, sizeof *samples, by_value);
  printf("%-40s p50 %6.1f  p99 %7.1f µs\n", label, samples[n / 2] / 1000.0, samples[n * 99 / 100] / 1000.0);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  uint32_t *words = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint32_t *ping = &words[0], *pong = &words[16];
  int pair[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
  pid_t child = fork();
  if (child == 0) {
    /* echo: a futex ping gets a futex pong, a byte gets the byte back */
    uint32_t seen = 0;
    for (int i = 0; i < 3 * n; i++) {
      if (i % 3 == 2) {
        char byte;
        if (read(pair[1], &byte, 1) != 1 || write(pair[1], &byte, 1) != 1) _exit(1);
      } else {
        futex_wait(ping, seen);
        seen++;
        futex_post(pong);
      }
    }
    _exit(0);
  }
  int64_t *futex_both = calloc((size_t)n, 8), *futex_poll = calloc((size_t)n, 8), *socket_both = calloc((size_t)n, 8);
  struct timespec pause = {0, 1000000};
  uint32_t answers = 0;
  for (int i = 0; i < 3 * n; i++) {
    nanosleep(&pause, NULL);
    int64_t t0 = now_ns();
    if (i % 3 == 2) {
      char byte = 1;
      if (write(pair[0], &byte, 1) != 1 || read(pair[0], &byte, 1) != 1) return 1;
      socket_both[i / 3] = now_ns() - t0;
      continue;
    }
    futex_post(ping);
    if (i % 3 == 0) {
      futex_wait(pong, answers);
      futex_both[i / 3] = now_ns() - t0;
    } else {
      while (__atomic_load_n(pong, __ATOMIC_SEQ_CST) == answers) __builtin_ia32_pause();
      futex_poll[i / 3] = now_ns() - t0;
    }
    answers++;
  }
  waitpid(child, NULL, 0);
  report("futex, both sides asleep", futex_both, n);
  report("futex, the waker polls for the answer", futex_poll, n);
  report("unix socketpair, both sides blocked", socket_both, n);
  return 0;
}
