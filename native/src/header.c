/* The segment header: names, creation options, initialisation and validation. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

int shmchan_check_name(const char *name) {
  if (name == NULL) return -EINVAL;
  if (name[0] == '/') name++;
  size_t len = strlen(name);
  if (len == 0 || len > SHMCHAN_NAME_MAX) return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    if (!ok) return -EINVAL;
  }
  /* "." and ".." would name directories, not segments */
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return -EINVAL;
  return 0;
}

int shmchan_segment_name(char *out, size_t size, const char *name) {
  int rc = shmchan_check_name(name);
  if (rc) return rc;
  snprintf(out, size, "/%s", name[0] == '/' ? name + 1 : name);
  return 0;
}

/* A record of R aligned bytes may need up to R - 8 bytes of padding before it and
 * 8 bytes of slack after it, so 2R must fit in the ring. */
uint32_t shmchan_max_message_limit(uint32_t capacity) {
  return capacity / 2 - SHMCHAN_RECORD_HEADER;
}

int shmchan_capacity_valid(uint32_t capacity) {
  return (capacity & (capacity - 1)) == 0 && capacity >= SHMCHAN_MIN_CAPACITY && capacity <= SHMCHAN_MAX_CAPACITY;
}

int shmchan_check_segment_options(const shmchan_segment_options_t *opt) {
  if (!shmchan_capacity_valid(opt->capacity)) return -EINVAL;
  if (opt->mode < SHMCHAN_MODE_SPSC || opt->mode > SHMCHAN_MODE_BROADCAST) return -EINVAL;
  if (shmchan_fanout_mode(opt->mode) &&
      (opt->max_consumers < 1 || opt->max_consumers > SHMCHAN_MAX_CONSUMERS || opt->overflow > SHMCHAN_OVERFLOW_OVERWRITE))
    return -EINVAL;
  if (opt->max_message_size < 1 || opt->max_message_size > shmchan_max_message_limit(opt->capacity))
    return -EINVAL;
  if (opt->codec > SHMCHAN_CODEC_MSGPACK_RECORDS) return -EINVAL;
  if (opt->permissions & ~0777u) return -EINVAL;
  return 0;
}

int64_t shmchan_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t shmchan_now_ms(void) { return shmchan_now_us() / 1000; }

int shmchan_await_header(int (*attempt)(void *context), void *context, int timeout_ms) {
  int64_t deadline = shmchan_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    int rc = attempt(context);
    if (rc != -EAGAIN) return rc;
    if (shmchan_now_ms() >= deadline) return -ETIMEDOUT;
    usleep(1000);
  }
}

static uint64_t epoch_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void shmchan_header_init(uint8_t *base, const char *name, uint32_t backend, uint32_t key,
                         const shmchan_segment_options_t *opt) {
  if (name[0] == '/') name++;
  *U32_AT(base, SHMCHAN_OFF_VERSION) = SHMCHAN_VERSION;
  *U32_AT(base, SHMCHAN_OFF_HEADER_SIZE) = SHMCHAN_HEADER_SIZE;
  *U32_AT(base, SHMCHAN_OFF_MODE) = opt->mode;
  *U32_AT(base, SHMCHAN_OFF_CAPACITY) = opt->capacity;
  *U32_AT(base, SHMCHAN_OFF_MAX_MESSAGE) = opt->max_message_size;
  *U32_AT(base, SHMCHAN_OFF_CODEC) = opt->codec;
  *U32_AT(base, SHMCHAN_OFF_BACKEND) = backend;
  *U64_AT(base, SHMCHAN_OFF_SEGMENT_SIZE) = (uint64_t)SHMCHAN_HEADER_SIZE + opt->capacity;
  /* the pid, for display only: the creator's lock says whether it lives */
  *U64_AT(base, SHMCHAN_OFF_CREATOR) = (uint64_t)(uint32_t)getpid() & ((1u << SHMCHAN_OWNER_PID_BITS) - 1);
  *U64_AT(base, SHMCHAN_OFF_CREATED_MS) = epoch_ms();
  *U32_AT(base, SHMCHAN_OFF_PERMISSIONS) = opt->permissions;
  if (shmchan_fanout_mode(opt->mode)) {
    *U32_AT(base, SHMCHAN_OFF_MAX_CONSUMERS) = opt->mode == SHMCHAN_MODE_MPMC ? SHMCHAN_MAX_CONSUMERS : opt->max_consumers;
    *U32_AT(base, SHMCHAN_OFF_OVERFLOW) = opt->overflow;
  }
  *U32_AT(base, SHMCHAN_OFF_KEY) = key;
  memcpy(base + SHMCHAN_OFF_NAME, name, strlen(name) + 1);
  /* Everything above becomes visible to an opener no later than the magic. */
  store_u32(base, SHMCHAN_OFF_MAGIC, SHMCHAN_MAGIC);
}

int shmchan_header_check(const uint8_t *base, size_t mapped_size) {
  shmchan_header_facts_t facts;
  return shmchan_header_validate(base, mapped_size, &facts);
}

/* Each field is read once (an atomic load, which the compiler may not repeat)
 * into a local; only the locals are checked and used. */
int shmchan_header_validate(const uint8_t *base, size_t mapped_size, shmchan_header_facts_t *facts) {
  if (mapped_size < SHMCHAN_HEADER_SIZE) return -EAGAIN;
  uint32_t magic = load_u32(base, SHMCHAN_OFF_MAGIC);
  if (magic == 0) return -EAGAIN;
  if (magic != SHMCHAN_MAGIC) return -EPROTONOSUPPORT;
  if (load_u32(base, SHMCHAN_OFF_VERSION) != SHMCHAN_VERSION ||
      load_u32(base, SHMCHAN_OFF_HEADER_SIZE) != SHMCHAN_HEADER_SIZE)
    return -EPROTONOSUPPORT;
  shmchan_segment_options_t opt = {
      .capacity = load_u32(base, SHMCHAN_OFF_CAPACITY),
      .mode = load_u32(base, SHMCHAN_OFF_MODE),
      .max_message_size = load_u32(base, SHMCHAN_OFF_MAX_MESSAGE),
      .codec = load_u32(base, SHMCHAN_OFF_CODEC),
      .permissions = load_u32(base, SHMCHAN_OFF_PERMISSIONS),
      .max_consumers = load_u32(base, SHMCHAN_OFF_MAX_CONSUMERS),
      .overflow = load_u32(base, SHMCHAN_OFF_OVERFLOW),
  };
  if (shmchan_check_segment_options(&opt) != 0) return -EBADMSG;
  uint64_t segment_size = load_u64(base, SHMCHAN_OFF_SEGMENT_SIZE);
  if (segment_size != (uint64_t)SHMCHAN_HEADER_SIZE + opt.capacity || segment_size > mapped_size)
    return -EBADMSG;
  uint32_t backend = load_u32(base, SHMCHAN_OFF_BACKEND);
  if (backend != SHMCHAN_BACKEND_POSIX && backend != SHMCHAN_BACKEND_SYSV) return -EBADMSG;
  if (memchr(base + SHMCHAN_OFF_NAME, 0, SHMCHAN_NAME_MAX + 1) == NULL) return -EBADMSG;
  *facts = (shmchan_header_facts_t){.segment_size = (size_t)segment_size, .mode = opt.mode, .codec = opt.codec};
  return 0;
}

int shmchan_fanout_mode(uint32_t mode) {
  return mode == SHMCHAN_MODE_MPMC || mode == SHMCHAN_MODE_BROADCAST;
}

uint32_t shmchan_sysv_nsems(uint32_t mode) {
  return shmchan_fanout_mode(mode) ? SHMCHAN_SYSV_NSEMS_FANOUT : SHMCHAN_SYSV_NSEMS;
}
