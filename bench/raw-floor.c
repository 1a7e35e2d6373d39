/* Raw 64 B one way through a shmchan 'spsc' ring between two C processes, with
 * the C library: the ceiling of the benchmark's "raw 64 B" row on this machine,
 * right now. The producer loops on shmchan_try_send, the forked consumer on
 * shmchan_try_receive; the consumer prints what it received per second after its
 * first `warm` messages (100,000 unless given), in millions:
 *
 *   make lib && cc -O2 -Inative/include -o /tmp/raw-floor bench/raw-floor.c build-c/libshmchan.a -lpthread
 *   /tmp/raw-floor [seconds] [warm]
 *
 * bench/raw-floor.mjs --c /tmp/raw-floor alternates it with the same pair in Node.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "shmchan.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int consume(const char *name, long warm) {
  shmchan_t *ch;
  shmchan_options_t options = {0};
  options.open_timeout_ms = 5000;
  if (shmchan_open(&ch, name, &options) != 0) return 1;
  char buf[256];
  long received = 0;
  double start = 0;
  for (;;) {
    int n = shmchan_try_receive(ch, buf, sizeof buf);
    if (n == -ESHUTDOWN) break;
    if (n == -EAGAIN) continue;
    if (n != 64) return 1;
    if (++received == warm) start = now();
  }
  if (received <= warm) return 1;
  printf("%.2f\n", (received - warm) / (now() - start) / 1e6);
  fflush(stdout);
  shmchan_close(ch);
  return 0;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2;
  long warm = argc > 2 ? atol(argv[2]) : 100000;
  if (seconds <= 0 || warm < 1) {
    fprintf(stderr, "usage: raw-floor [seconds > 0] [warm >= 1]\n");
    return 2;
  }
  char name[64];
  snprintf(name, sizeof name, "bench-raw-floor-%d", (int)getpid());
  shmchan_t *ch;
  if (shmchan_create(&ch, name, NULL) != 0) {
    fprintf(stderr, "raw-floor: cannot create %s\n", name);
    return 1;
  }
  pid_t child = fork();
  if (child == 0) _exit(consume(name, warm));
  char message[64];
  memset(message, 7, sizeof message);
  double end = now() + seconds;
  while (now() < end)
    for (int i = 0; i < 1000; i++)
      while (shmchan_try_send(ch, message, sizeof message) == -EAGAIN)
        if (now() > end + 10) { /* a consumer that died leaves the ring full */
          fprintf(stderr, "raw-floor: the consumer stopped taking messages\n");
          shmchan_close(ch);
          return 1;
        }
  shmchan_end(ch);
  int status = 1;
  waitpid(child, &status, 0);
  shmchan_close(ch);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
