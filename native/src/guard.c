/* Surviving a segment that another process shrinks.
 *
 * A process with write access to a POSIX segment can ftruncate it to a smaller
 * size. Touching a mapped page past the new end then raises SIGBUS, which would
 * kill a process that did nothing wrong, from JavaScript code that cannot check
 * first (the file may shrink between any check and the access). So every mapped
 * segment is recorded here, and the SIGBUS handler replaces the whole mapping of
 * the segment that faulted with private zero pages: the faulting access is
 * retried and succeeds, the segment now reads as zeros (its magic is 0), and the
 * next call on it reports a corrupt channel. A fault anywhere else goes to the
 * handler that was there before, or kills the process as it would have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>

#include "platform.h"

/* More segments than this mapped at once are simply not guarded. */
#define GUARD_SLOTS 4096
/* A slot's base: 0 free, 1 being filled, else the mapping's address. */
#define SLOT_FILLING 1u

static struct {
  uintptr_t base;
  size_t size;
} slots[GUARD_SLOTS];

static struct sigaction previous;
static int installed;

void shmchan_guard_add(void *base, size_t size) {
  for (size_t i = 0; i < GUARD_SLOTS; i++) {
    uintptr_t expected = 0;
    if (__atomic_load_n(&slots[i].base, __ATOMIC_RELAXED) != 0 ||
        !__atomic_compare_exchange_n(&slots[i].base, &expected, SLOT_FILLING, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      continue;
    __atomic_store_n(&slots[i].size, size, __ATOMIC_RELEASE);
    __atomic_store_n(&slots[i].base, (uintptr_t)base, __ATOMIC_RELEASE);
    return;
  }
}

/* Shrinking is safe while the handler may run; growing is not needed. */
void shmchan_guard_resize(void *base, size_t size) {
  for (size_t i = 0; i < GUARD_SLOTS; i++)
    if (__atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE) == (uintptr_t)base) {
      __atomic_store_n(&slots[i].size, size, __ATOMIC_RELEASE);
      return;
    }
}

void shmchan_guard_remove(void *base) {
  for (size_t i = 0; i < GUARD_SLOTS; i++)
    if (__atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE) == (uintptr_t)base) {
      __atomic_store_n(&slots[i].base, SLOT_FILLING, __ATOMIC_RELEASE);
      __atomic_store_n(&slots[i].size, 0, __ATOMIC_RELEASE);
      __atomic_store_n(&slots[i].base, 0, __ATOMIC_RELEASE);
      return;
    }
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
  if (info->si_code > 0) { /* a fault, not a signal sent by kill() */
    uintptr_t address = (uintptr_t)info->si_addr;
    for (size_t i = 0; i < GUARD_SLOTS; i++) {
      uintptr_t base = __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE);
      if (base <= SLOT_FILLING) continue;
      size_t size = __atomic_load_n(&slots[i].size, __ATOMIC_ACQUIRE);
      if (address - base >= size) continue;
      int saved = errno;
      void *replaced = mmap((void *)base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      errno = saved;
      if (replaced != MAP_FAILED) return; /* the access is retried, on zeros */
      break;
    }
  }
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);
    if (info->si_code <= 0) raise(sig); /* else returning repeats the fault, now fatal */
  }
}

int shmchan_guard_install(void) {
  if (__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL)) return 0;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGBUS, &action, &previous) != 0) {
    __atomic_store_n(&installed, 0, __ATOMIC_RELEASE);
    return -errno;
  }
  return 0;
}
