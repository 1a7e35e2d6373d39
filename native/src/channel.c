/* Channel handles for C programs (the channel API in shmchan.h): options, roles,
 * the data path of each mode, waiting, and removal on close, as src/channel.ts
 * does for Node. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

#define DEFAULT_CAPACITY (1u << 20)
#define DEFAULT_OPEN_TIMEOUT_MS 1000
#define DEFAULT_MAX_CONSUMERS 16
#define DEFAULT_SPIN_US 50
/* While the next MPSC record is claimed but not committed, sleeps are this short so
 * that a dead claimant is noticed within milliseconds. */
#define CLAIM_SLICE_MS 2
#define NAME_POLL_US 5000

struct shmchan {
  shmchan_segment_t seg;
  uint32_t mode;
  uint32_t capacity;
  uint32_t max_message_size;
  uint32_t codec;
  int spin_us;
  int producer_slot; /* -1 until the first producing call */
  int consumer_held;
  shmchan_cursor_t spsc_tail, spsc_head;
  shmchan_mpsc_writer_t writer;
  shmchan_mpsc_reader_t reader;
  shmchan_fanout_reader_t fanout; /* MPMC, BROADCAST */
  int from_oldest;                /* BROADCAST: a subscriber starts at the oldest message */
  int overwrite;                  /* BROADCAST: overflow OVERWRITE, as read at open */
  /* what close removes: a POSIX name still naming this inode, or System V ids */
  int unlink_on_close;
  ino_t inode;
};

static const shmchan_options_t no_options;

static ino_t inode_of(const char *slash_name) {
  char path[SHMCHAN_NAME_MAX + 16];
  struct stat st;
  snprintf(path, sizeof path, "/dev/shm%s", slash_name);
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

static uint32_t key_for(const char *name, const shmchan_options_t *o) {
  return o->key != 0 ? o->key : shmchan_sysv_key_of_name(name);
}

static int backend_valid(uint32_t backend) {
  return backend == 0 || backend == SHMCHAN_BACKEND_POSIX || backend == SHMCHAN_BACKEND_SYSV;
}

/* The handle around a mapped segment; the header was validated by create/open. */
static int adopt(shmchan_t **out, shmchan_segment_t *seg, const shmchan_options_t *o, int creator) {
  uint32_t mode = seg->mode; /* as validated: never the header read again */
  int known = mode == SHMCHAN_MODE_SPSC || mode == SHMCHAN_MODE_MPSC || shmchan_fanout_mode(mode);
  shmchan_t *ch = known ? calloc(1, sizeof *ch) : NULL;
  if (ch == NULL) {
    int rc = known ? -ENOMEM : -EBADMSG;
    if (creator && seg->backend == SHMCHAN_BACKEND_SYSV) shmchan_sysv_remove_ids(seg->shmid, seg->semid);
    else if (creator) shm_unlink(seg->name);
    shmchan_segment_unmap(seg);
    return rc;
  }
  ch->seg = *seg;
  ch->mode = mode;
  ch->capacity = capacity_of(seg);
  ch->max_message_size = max_payload_of(seg);
  ch->codec = seg->codec;
  ch->spin_us = o->spin_us == 0 ? DEFAULT_SPIN_US : o->spin_us < 0 ? 0 : o->spin_us;
  ch->producer_slot = -1;
  ch->from_oldest = o->from == SHMCHAN_FROM_OLDEST;
  ch->overwrite = load_u32(seg->base, SHMCHAN_OFF_OVERFLOW) == SHMCHAN_OVERFLOW_OVERWRITE;
  ch->unlink_on_close = o->unlink_on_close == 0 ? creator : o->unlink_on_close > 0;
  if (ch->unlink_on_close && seg->backend == SHMCHAN_BACKEND_POSIX) ch->inode = inode_of(seg->name);
  *out = ch;
  return 0;
}

int shmchan_create(shmchan_t **out, const char *name, const shmchan_options_t *options) {
  const shmchan_options_t *o = options != NULL ? options : &no_options;
  *out = NULL;
  if (!backend_valid(o->backend) || o->capacity > SHMCHAN_MAX_CAPACITY) return -EINVAL;
  uint32_t capacity = SHMCHAN_MIN_CAPACITY;
  while (capacity < (o->capacity != 0 ? o->capacity : DEFAULT_CAPACITY)) capacity *= 2;
  uint32_t limit = shmchan_max_message_limit(capacity);
  shmchan_segment_options_t layout = {
      .capacity = capacity,
      .mode = o->mode != 0 ? o->mode : SHMCHAN_MODE_SPSC,
      .max_message_size = o->max_message_size != 0 ? o->max_message_size : capacity / 4 < limit ? capacity / 4 : limit,
      .codec = o->codec,
      .permissions = o->permissions != 0 ? o->permissions : 0600,
      .max_consumers = o->mode == SHMCHAN_MODE_MPMC ? SHMCHAN_MAX_CONSUMERS
                       : o->max_consumers != 0        ? o->max_consumers
                                                      : DEFAULT_MAX_CONSUMERS,
      .overflow = o->overflow,
  };
  shmchan_segment_t seg;
  int sysv = o->backend == SHMCHAN_BACKEND_SYSV;
  uint32_t key = key_for(name, o);
  /* A stale channel (nobody has it open) with no unread message is replaced, as
   * Channel.create does; the loop ends when a create or a removal fails. */
  for (int attempt = 0;; attempt++) {
    int rc = sysv ? shmchan_segment_create_sysv(&seg, name, key, &layout) : shmchan_segment_create_posix(&seg, name, &layout);
    if (rc == 0) return adopt(out, &seg, o, 1);
    uint64_t unread;
    if (rc != -EEXIST || attempt == 3) return rc;
    int removed = sysv ? shmchan_segment_remove_stale_sysv(name, key, 0, &unread)
                       : shmchan_segment_remove_stale_posix(name, 0, &unread);
    if (removed != 0 && removed != -ENOENT) return -EEXIST;
  }
}

int shmchan_open(shmchan_t **out, const char *name, const shmchan_options_t *options) {
  const shmchan_options_t *o = options != NULL ? options : &no_options;
  *out = NULL;
  if (!backend_valid(o->backend)) return -EINVAL;
  int forever = o->open_timeout_ms < 0;
  int timeout = o->open_timeout_ms > 0 ? o->open_timeout_ms : DEFAULT_OPEN_TIMEOUT_MS;
  int64_t deadline = shmchan_now_ms() + timeout;
  shmchan_segment_t seg;
  for (;;) {
    int64_t left = forever ? DEFAULT_OPEN_TIMEOUT_MS : deadline - shmchan_now_ms();
    if (left < 0) left = 0;
    int rc = o->backend == SHMCHAN_BACKEND_SYSV ? shmchan_segment_open_sysv(&seg, name, key_for(name, o), (int)left, 0)
                                                  : shmchan_segment_open_posix(&seg, name, (int)left, 0);
    if (rc == 0) return adopt(out, &seg, o, 0);
    /* a name that does not exist yet is waited for only when asked to */
    int again = (rc == -ENOENT && o->open_timeout_ms != 0) || (rc == -ETIMEDOUT && forever);
    if (!again || (!forever && shmchan_now_ms() >= deadline)) return rc;
    usleep(NAME_POLL_US);
  }
}

void shmchan_close(shmchan_t *ch) {
  if (ch == NULL) return;
  if (ch->consumer_held) shmchan_release_consumer(&ch->seg);
  if (ch->producer_slot >= 0) shmchan_release_producer(&ch->seg);
  int shmid = ch->seg.shmid, semid = ch->seg.semid;
  uint32_t backend = ch->seg.backend;
  shmchan_segment_unmap(&ch->seg);
  if (ch->unlink_on_close && backend == SHMCHAN_BACKEND_SYSV) shmchan_sysv_remove_ids(shmid, semid);
  else if (ch->unlink_on_close && ch->inode != 0 && inode_of(ch->seg.name) == ch->inode) shm_unlink(ch->seg.name);
  free(ch);
}

int shmchan_unlink(const char *name, const shmchan_options_t *options) {
  const shmchan_options_t *o = options != NULL ? options : &no_options;
  if (!backend_valid(o->backend)) return -EINVAL;
  if (o->backend == SHMCHAN_BACKEND_SYSV) return shmchan_segment_unlink_sysv(name, key_for(name, o));
  return shmchan_segment_unlink_posix(name);
}

/* The magic never changes in a healthy channel: it reads as 0 after another
 * process truncated the segment (with the guard installed) or overwrote it. */
static int live(const shmchan_t *ch) {
  return load_u32(ch->seg.base, SHMCHAN_OFF_MAGIC) == SHMCHAN_MAGIC ? 0 : -EBADMSG;
}

static int claim_producer(shmchan_t *ch) {
  if (ch->producer_slot >= 0) return 0;
  int slot = shmchan_claim_producer(&ch->seg);
  if (slot < 0) return slot;
  if (ch->mode == SHMCHAN_MODE_MPSC || shmchan_fanout_mode(ch->mode)) {
    shmchan_mpsc_writer_init(&ch->writer, &ch->seg);
  } else {
    int64_t tail = shmchan_recover_tail(&ch->seg);
    if (tail < 0) {
      shmchan_release_producer(&ch->seg);
      return (int)tail;
    }
    ch->spsc_tail = (shmchan_cursor_t){
        .position = (uint32_t)tail, .other = load_u32(ch->seg.base, SHMCHAN_OFF_HEAD), .slot = (uint32_t)slot};
  }
  ch->producer_slot = slot;
  return 0;
}

static int claim_consumer(shmchan_t *ch) {
  if (ch->consumer_held) return 0;
  int rc = shmchan_claim_consumer(&ch->seg);
  if (rc < 0) return rc;
  if (shmchan_fanout_mode(ch->mode)) {
    /* rc is the consumer slot */
    if ((rc = shmchan_fanout_reader_init(&ch->fanout, &ch->seg, ch->mode, (uint32_t)rc, ch->from_oldest)) != 0) {
      shmchan_release_consumer(&ch->seg);
      return rc;
    }
  } else if (ch->mode == SHMCHAN_MODE_MPSC) shmchan_mpsc_reader_init(&ch->reader, &ch->seg);
  else ch->spsc_head = (shmchan_cursor_t){.position = load_u32(ch->seg.base, SHMCHAN_OFF_HEAD)};
  ch->consumer_held = 1;
  return 0;
}

static int ended(const shmchan_t *ch) { return load_u32(ch->seg.base, SHMCHAN_OFF_ENDED) != 0; }

/* One try of a send or a receive, for shmchan_run_wait_plan. */
typedef struct attempt {
  shmchan_t *ch;
  const void *data;
  void *buf;
  uint32_t len;
} attempt_t;

/* The fan-out modes write as MPSC; a producer without room moves the head itself. */
static int fanout_try_send(shmchan_t *ch, const void *data, uint32_t len) {
  for (;;) {
    int rc = shmchan_mpsc_try_send(&ch->seg, &ch->writer, data, len);
    if (rc != -EAGAIN) return rc;
    uint32_t size = (SHMCHAN_RECORD_HEADER + len + 7u) & ~7u;
    uint32_t to_end = ch->capacity - (load_u32(ch->seg.base, SHMCHAN_OFF_TAIL) & (ch->capacity - 1));
    uint32_t need = size + (to_end < size ? to_end : 0);
    rc = shmchan_fanout_make_room(&ch->seg, ch->mode, ch->overwrite, ch->writer.marker, need);
    if (rc <= 0) return rc < 0 ? rc : -EAGAIN;
  }
}

static int attempt_send(void *context) {
  attempt_t *a = context;
  shmchan_t *ch = a->ch;
  int rc = live(ch);
  if (rc != 0) return rc;
  if (ch->mode == SHMCHAN_MODE_MPSC) return shmchan_mpsc_try_send(&ch->seg, &ch->writer, a->data, a->len);
  if (shmchan_fanout_mode(ch->mode)) return fanout_try_send(ch, a->data, a->len);
  return shmchan_spsc_try_send(&ch->seg, &ch->spsc_tail, a->data, a->len);
}

static int attempt_receive(void *context) {
  attempt_t *a = context;
  shmchan_t *ch = a->ch;
  int rc = live(ch);
  if (rc != 0) return rc;
  if (ch->mode == SHMCHAN_MODE_MPSC) rc = shmchan_mpsc_try_receive(&ch->seg, &ch->reader, a->buf, a->len);
  else if (shmchan_fanout_mode(ch->mode)) rc = shmchan_fanout_try_receive(&ch->seg, &ch->fanout, a->buf, a->len);
  else rc = shmchan_spsc_try_receive(&ch->seg, &ch->spsc_head, a->buf, a->len);
  /* bytes read while the segment was truncated may be half zeros: never return them */
  return rc >= 0 && live(ch) != 0 ? -EBADMSG : rc;
}

static int receive_slice_ms(void *context) {
  const shmchan_t *ch = ((attempt_t *)context)->ch;
  if (shmchan_fanout_mode(ch->mode))
    return ch->fanout.scanner.waiting_on_claim || ch->fanout.taken_count != 0 ? CLAIM_SLICE_MS : 0;
  return ch->mode == SHMCHAN_MODE_MPSC && ch->reader.scanner.waiting_on_claim ? CLAIM_SLICE_MS : 0;
}

/* Checks made before the producer role is claimed: a send that cannot succeed
 * changes nothing. */
static int start_send(shmchan_t *ch, size_t len) {
  int rc = live(ch);
  if (rc != 0) return rc;
  if (len > ch->max_message_size) return -EMSGSIZE;
  if (ended(ch)) return -ESHUTDOWN;
  return claim_producer(ch);
}

int shmchan_send(shmchan_t *ch, const void *data, size_t len, int timeout_ms) {
  int rc = start_send(ch, len);
  if (rc != 0) return rc;
  attempt_t a = {ch, data, NULL, (uint32_t)len};
  shmchan_wait_plan_t plan = {SHMCHAN_WAIT_SPACE, attempt_send, NULL, &a};
  return shmchan_run_wait_plan(&ch->seg, &plan, timeout_ms, ch->spin_us);
}

int shmchan_try_send(shmchan_t *ch, const void *data, size_t len) {
  int rc = start_send(ch, len);
  if (rc != 0) return rc;
  attempt_t a = {ch, data, NULL, (uint32_t)len};
  return attempt_send(&a);
}

/* Checks made before each receive: the consumer role is claimed on the first. */
static int start_receive(shmchan_t *ch) {
  int rc = live(ch);
  if (rc != 0) return rc;
  return claim_consumer(ch);
}

int shmchan_receive(shmchan_t *ch, void *buf, size_t cap, int timeout_ms) {
  int rc = start_receive(ch);
  if (rc != 0) return rc;
  attempt_t a = {ch, NULL, buf, cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap};
  shmchan_wait_plan_t plan = {SHMCHAN_WAIT_DATA, attempt_receive, receive_slice_ms, &a};
  return shmchan_run_wait_plan(&ch->seg, &plan, timeout_ms, ch->spin_us);
}

int shmchan_try_receive(shmchan_t *ch, void *buf, size_t cap) {
  int rc = start_receive(ch);
  if (rc != 0) return rc;
  attempt_t a = {ch, NULL, buf, cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap};
  return attempt_receive(&a);
}

int shmchan_end(shmchan_t *ch) {
  int rc = live(ch);
  if (rc != 0 || ended(ch)) return rc;
  if ((rc = claim_producer(ch)) != 0) return rc;
  shmchan_segment_end(&ch->seg);
  return 0;
}

int shmchan_stats(shmchan_t *ch, shmchan_stats_t *out) {
  int rc = live(ch);
  if (rc == 0) shmchan_segment_stats(&ch->seg, out);
  return rc;
}

uint32_t shmchan_mode(const shmchan_t *ch) { return ch->mode; }
uint32_t shmchan_capacity(const shmchan_t *ch) { return ch->capacity; }
uint32_t shmchan_max_message_size(const shmchan_t *ch) { return ch->max_message_size; }
uint32_t shmchan_codec(const shmchan_t *ch) { return ch->codec; }
uint64_t shmchan_messages_lost(const shmchan_t *ch) { return ch->fanout.messages_lost; }
