/*
 * The C core's building blocks, below the channel API of shmchan.h: segments
 * (POSIX and System V), the header, the roles, waiting and the data path of both
 * modes. The Node addon (native/binding.cc) is built on them, and so is the C
 * channel API (channel.c). They are private: not installed, not documented for
 * C programs, and free to change with the addon. platform.h has the helpers that
 * only the core's own source files share.
 */
#ifndef SHMCHAN_SEGMENT_H
#define SHMCHAN_SEGMENT_H

#include "../include/shmchan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- segments ------------------------------------------------------------ */

typedef struct shmchan_segment {
  uint8_t *base;     /* the mapping: header, then ring */
  size_t size;       /* bytes mapped */
  uint32_t backend;  /* SHMCHAN_BACKEND_* */
  char name[SHMCHAN_NAME_MAX + 2]; /* "/name", as given to shm_open */
  const char *syscall; /* after a failed create/open: the system call that failed */
  /* The roles this handle holds, kept by the role functions below. */
  int consumer_held;
  int producer_slot; /* -1: none */
  int consumer_slot; /* MPMC and BROADCAST: the consumer slot held, -1: none */
  /* As create wrote them or open validated them: the header's words may be
   * rewritten by another process later, so nothing reads them again. */
  uint32_t mode;     /* SHMCHAN_MODE_* */
  uint32_t codec;    /* SHMCHAN_CODEC_* */
  int creator;       /* this handle created the channel (and holds its creator lock) */
  int opened;        /* this handle holds its share of the "open" lock */
  /* POSIX only: the segment's file, open for the handle's lifetime; its
   * open-file-description locks are the handle's roles ("Liveness", shmchan.h). */
  int fd;
  /* System V only */
  uint32_t key;      /* the key_t's bits */
  int shmid;         /* the segment */
  int semid;         /* its semaphore set */
} shmchan_segment_t;

typedef struct shmchan_segment_options {
  uint32_t capacity;         /* ring bytes: a power of two in [MIN, MAX] */
  uint32_t mode;             /* SHMCHAN_MODE_* */
  uint32_t max_message_size; /* 1 .. shmchan_max_message_limit(capacity) */
  uint32_t codec;            /* SHMCHAN_CODEC_* */
  uint32_t permissions;      /* e.g. 0600 */
  uint32_t max_consumers;    /* MPMC, BROADCAST: 1..SHMCHAN_MAX_CONSUMERS (0: 16; MPMC always 64) */
  uint32_t overflow;         /* BROADCAST: SHMCHAN_OVERFLOW_* */
} shmchan_segment_options_t;

/* Checks a name (optional leading '/', then 1..200 of [A-Za-z0-9._-]). 0 or -EINVAL. */
int shmchan_check_name(const char *name);

/* The largest max_message_size a ring of this capacity can take. */
uint32_t shmchan_max_message_limit(uint32_t capacity);

/* Validates a mapped header against the mapped size. 0, -EBADMSG, -EPROTONOSUPPORT,
 * or -EAGAIN while the magic is not yet published. */
int shmchan_header_check(const uint8_t *base, size_t mapped_size);

/* What shmchan_header_validate found valid, each field read once. Another
 * process may rewrite the header at any time: an opener maps and trusts these
 * values, never the header read again. */
typedef struct shmchan_header_facts {
  size_t segment_size; /* header + capacity, within the mapping */
  uint32_t mode;       /* SHMCHAN_MODE_* */
  uint32_t codec;      /* SHMCHAN_CODEC_* */
} shmchan_header_facts_t;

/* shmchan_header_check, and on success what it validated in *facts. */
int shmchan_header_validate(const uint8_t *base, size_t mapped_size, shmchan_header_facts_t *facts);

/* Creates a POSIX segment exclusively and initialises its header. -EEXIST if the
 * name is taken, -EACCES, -ENOSPC, ... On failure nothing is left behind. */
int shmchan_segment_create_posix(shmchan_segment_t *seg, const char *name, const shmchan_segment_options_t *opt);

/* Opens an existing POSIX segment, waiting up to timeout_ms for a creator that is
 * still initialising it, and validates its header. -ENOENT, -EACCES, -EBADMSG,
 * -EPROTONOSUPPORT, -ETIMEDOUT (the header never became valid). With `inspect`
 * (shmchan ls, stat, top) it takes no share of the "open" lock: a look must not
 * make a stale channel seem open to a process replacing it. Such a handle is only
 * read, asked shmchan_segment_in_use, and closed. */
int shmchan_segment_open_posix(shmchan_segment_t *seg, const char *name, int timeout_ms, int inspect);

/* Removes the name; mappings stay valid until unmapped. 0, -ENOENT, -EACCES. */
int shmchan_segment_unlink_posix(const char *name);

/* The messages committed and not yet received, from a header's counters. */
uint64_t shmchan_unread_messages(const uint8_t *base);

/* Removes a stale POSIX channel: one that no handle has open. Holding a write lock
 * on its SHMCHAN_LOCK_OPEN byte (so nobody can open it meanwhile), it counts the
 * unread messages into *unread and unlinks the name, unless there are some and
 * `force` is 0. 0 (removed), -EBUSY (a live handle has it open), -ENOTEMPTY
 * (unread messages, not forced), -ENOENT (no such name, or replaced meanwhile),
 * -EPROTONOSUPPORT / -EBADMSG / -EAGAIN (not a valid channel of this version:
 * left alone), -EACCES... */
int shmchan_segment_remove_stale_posix(const char *name, int force, uint64_t *unread);

/* Unmaps (POSIX) or detaches (System V). Safe to call twice. A System V process
 * whose detach destroyed a removed segment also removes its semaphore set. */
void shmchan_segment_unmap(shmchan_segment_t *seg);

/* ---- System V segments ----------------------------------------------------
 *
 * A System V channel is a segment (shmget) and a semaphore set (semget) with the
 * same key, created together, permissions applied to both. The header stores
 * the key and the set's id; an opener checks both against what it finds.
 */

/* Creates the segment and its semaphore set exclusively (IPC_CREAT|IPC_EXCL) and
 * initialises the header. -EEXIST when the key is taken (seg->syscall says by a
 * segment, "shmget", or by a semaphore set, "semget"), -EINVAL for key 0,
 * -ENOSPC, -ENOMEM, -EACCES... On failure nothing is left behind. */
int shmchan_segment_create_sysv(shmchan_segment_t *seg, const char *name, uint32_t key, const shmchan_segment_options_t *opt);

/* Attaches the segment with this key, waiting up to timeout_ms for a creator that
 * is still initialising it, and validates its header (size from IPC_STAT) and
 * semaphore set. -ENOENT, -EACCES, -EBADMSG, -EPROTONOSUPPORT, -ETIMEDOUT, and
 * -EEXIST when the key holds another channel (shmchan_sysv_holder names it).
 * `inspect`: as for shmchan_segment_open_posix (no raise of the "open" semaphore). */
int shmchan_segment_open_sysv(shmchan_segment_t *seg, const char *name, uint32_t key, int timeout_ms, int inspect);

/* Removes the channel with this name and key: IPC_RMID on the segment (it goes
 * when the last process detaches) and on its semaphore set (at once: sleepers
 * get -EIDRM). A semaphore set of this key whose segment is already gone is
 * removed too. 0, -ENOENT, -EEXIST (the key holds another channel),
 * -EPROTONOSUPPORT (not a shmchan segment), -EACCES, -EPERM. */
int shmchan_segment_unlink_sysv(const char *name, uint32_t key);

/* Removes a stale System V channel (no handle has it open) as
 * shmchan_segment_remove_stale_posix does: under SHMCHAN_SYSV_SEM_REPLACING,
 * which openers wait for. Same results; -EEXIST: the key holds another channel. */
int shmchan_segment_remove_stale_sysv(const char *name, uint32_t key, int force, uint64_t *unread);

/* Removes a channel's segment and semaphore set by the ids its handle recorded
 * (-1: none), so a channel created since under the same key is never touched. */
void shmchan_sysv_remove_ids(int shmid, int semid);

/* Copies the name of the channel that holds this key into out (at least
 * SHMCHAN_NAME_MAX + 1 bytes). 0, -ENOENT, -EPROTONOSUPPORT (not a shmchan
 * segment), -EAGAIN (not initialised yet), -EACCES. */
int shmchan_sysv_holder(uint32_t key, char *out);

/* ---- processes and roles ------------------------------------------------- */

/* Roles are kept by the kernel: POSIX file locks, System V semaphores taken
 * with SEM_UNDO (see "Liveness" in shmchan.h). */

/* Takes this handle's share of the "open" lock (and, for its creator, the
 * creator lock). 0, -EAGAIN (a replacer holds the channel), or -errno. */
int shmchan_lock_open(shmchan_segment_t *seg, int creator);
/* Gives up what shmchan_lock_open took (System V; POSIX closes the file). */
void shmchan_unlock_open(shmchan_segment_t *seg);
/* 1 when some other handle than this one has the channel open (the channel is
 * not stale). System V: when a live process holds a role or created it. */
int shmchan_segment_in_use(shmchan_segment_t *seg);
/* The pid a role field holds, for display. */
static inline uint32_t shmchan_owner_pid(uint64_t owner) {
  return (uint32_t)(owner & ((1u << SHMCHAN_OWNER_PID_BITS) - 1));
}

/* Claims the consumer role for this handle. A role whose holder died is taken
 * over. 0, or -EBUSY when a live handle (possibly this one) holds it. MPMC and
 * BROADCAST: claims a free or dead consumer slot (bumping its generation) and
 * returns its index, or -EUSERS when max_consumers live handles hold one. */
int shmchan_claim_consumer(shmchan_segment_t *seg);
void shmchan_release_consumer(shmchan_segment_t *seg);

/* Claims a producer slot for this handle: the only one in SPSC, any free or dead
 * one in MPSC, and bumps its generation. Returns the slot index, -EBUSY (SPSC, a
 * live producer holds it, or this handle already holds a slot) or -EUSERS (MPSC,
 * all slots held by live handles). */
int shmchan_claim_producer(shmchan_segment_t *seg);
void shmchan_release_producer(shmchan_segment_t *seg);

/* SPSC: a new producer's tail. The old producer may have died after committing a
 * record but before publishing the tail, so committed records past the stored
 * tail are skipped. Returns the tail as a non-negative value or -EBADMSG. */
int64_t shmchan_recover_tail(shmchan_segment_t *seg);

/* 1 when a consumer was attached and has died since (its slot still names it). */
int shmchan_consumer_gone(shmchan_segment_t *seg);

/* 1 for the fan-out modes (MPMC, BROADCAST), which have many consumers. */
int shmchan_fanout_mode(uint32_t mode);
/* The semaphores of a System V set for a channel of this mode. */
uint32_t shmchan_sysv_nsems(uint32_t mode);

/* MPSC: 1 when producer slot `slot` is held by a live handle and its generation
 * is `generation` (masked by SHMCHAN_CLAIM_GENERATION_MASK), i.e. a claim marker
 * naming them belongs to a producer that can still commit. Slots
 * SHMCHAN_MAX_PRODUCERS + i name consumer slot i (MPMC, BROADCAST). */
int shmchan_claimant_alive(shmchan_segment_t *seg, uint32_t slot, uint32_t generation);

/* The claim marker of this handle's producer slot (after a claim). */
uint32_t shmchan_claim_marker(const shmchan_segment_t *seg);

/* The counters, the live roles and the ended flag, as the header has them now. */
void shmchan_segment_stats(const shmchan_segment_t *seg, shmchan_stats_t *out);

/* ---- waiting ------------------------------------------------------------- */

/* Sleeps while the sequence of wait line `which` (SHMCHAN_WAIT_DATA or _SPACE)
 * still equals `expected`, at most timeout_ms (< 0: forever). 0 when woken or
 * the sequence moved (or, rarely, spuriously), -ETIMEDOUT, -EINTR, or -EIDRM when
 * a System V channel's semaphore set was removed. The caller must have announced
 * itself in the waiters word first. A POSIX channel sleeps on a futex, a System V
 * channel on its semaphore set (see wait.c for the protocol). */
int shmchan_wait(shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms);

/* The sleeper's side: sets SHMCHAN_SEQ_ARMED in the sequence of wait line
 * `which` (if no other sleeper has) and returns the armed sequence, the value to
 * pass to shmchan_wait after one more look at the ring. */
uint32_t shmchan_arm_wait(shmchan_segment_t *seg, int which);

/* Moves the sequence (clearing SHMCHAN_SEQ_ARMED) and wakes every sleeper of
 * that wait line, whether or not one armed it. 0, or -EIDRM (System V: the
 * semaphore set is gone). */
int shmchan_wake(shmchan_segment_t *seg, int which);

/* The waker's side after a publication: like shmchan_wake, but only when a
 * sleeper armed the line, and only the first of several wakers that find it
 * armed makes the system call. */
int shmchan_wake_armed(shmchan_segment_t *seg, int which);

/* Many sleeps on one thread (POSIX segments only): sleeps until the process-private
 * word `bell` moves from bell_expected (another thread of this process rang it
 * with shmchan_ring_bell), or any of the `count` wait lines moves from its
 * expected sequence, or CLOCK_MONOTONIC reaches deadline_ns (< 0: never). Uses
 * futex_waitv (Linux 5.16). 0 (something moved, or spuriously: look at every
 * line), -ETIMEDOUT, -EINTR, -EFAULT (a line's segment was unmapped meanwhile),
 * -ENOSYS (no futex_waitv: see shmchan_wait_any_supported). */
#define SHMCHAN_WAIT_ANY_MAX 127
typedef struct shmchan_wait_line {
  shmchan_segment_t *seg;
  int which;
  uint32_t expected;
} shmchan_wait_line_t;
int shmchan_wait_any(uint32_t *bell, uint32_t bell_expected, const shmchan_wait_line_t *lines, int count, int64_t deadline_ns);

/* Whether this kernel has futex_waitv, which shmchan_wait_any needs. */
int shmchan_wait_any_supported(void);

/* Moves `bell` and wakes the thread of this process sleeping on it. */
void shmchan_ring_bell(uint32_t *bell);

/* Sleeps without a thread (uring.c): io_uring's FUTEX_WAIT queues a POSIX
 * segment's sleep in the kernel, and the ring's descriptor (shmchan_uring_fd)
 * polls readable once a sleep has ended, for an event loop to collect with
 * shmchan_uring_ended. A ring is used by the thread that opened it only.
 * shmchan_uring_open: 0, or a negative errno when this kernel or its policy
 * offers no io_uring with FUTEX_WAIT (-ENOSYS, -EPERM, -EOPNOTSUPP...). */
typedef struct shmchan_uring shmchan_uring_t;
typedef struct shmchan_uring_end {
  uint64_t tag; /* as given to shmchan_uring_sleep */
  int rc;       /* 0: woken or the line had moved; -ECANCELED: timed out or cancelled */
} shmchan_uring_end_t;
int shmchan_uring_open(shmchan_uring_t **ring);
void shmchan_uring_close(shmchan_uring_t *ring);
int shmchan_uring_fd(const shmchan_uring_t *ring);
/* Queues a sleep on wait line `which` while its sequence equals `expected`, for
 * at most timeout_ms (< 0: no limit); `tag` (not 0) names it in its end. 0 once
 * queued, or -EBUSY when the submission queue is full. Unless held, it goes to
 * the kernel at once; if io_uring_enter refuses it (EAGAIN, EBUSY), it stays
 * queued: shmchan_uring_refused says so, and shmchan_uring_hold(ring, 0) hands
 * it over again. */
int shmchan_uring_sleep(shmchan_uring_t *ring, shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms, uint64_t tag);
/* While held (1), sleeps are queued and go to the kernel together when the hold
 * ends (0) or the queue is full. Releasing it submits every entry the kernel has
 * not taken: 0, or io_uring_enter's negative errno (they stay queued). */
int shmchan_uring_hold(shmchan_uring_t *ring, int held);
/* Entries a refused submission left queued (0 while none was refused: the
 * sleeps a hold keeps back are not counted). */
unsigned shmchan_uring_refused(const shmchan_uring_t *ring);
/* Ends the sleep named `tag` soon (its end says -ECANCELED, or 0 if it ended
 * first). 0 once queued (submitted as a sleep is), or -EBUSY. */
int shmchan_uring_cancel(shmchan_uring_t *ring, uint64_t tag);
/* Collects up to `max` ended sleeps; answers how many. */
int shmchan_uring_ended(shmchan_uring_t *ring, shmchan_uring_end_t *ends, int max);

/* The current sequence of a wait line. */
uint32_t shmchan_wait_sequence(shmchan_segment_t *seg, int which);

/* A waiting call (wait.c): `attempt` is tried until it answers something other
 * than -EAGAIN, spinning for spin_us, then sleeping on wait line `which` in
 * slices of at most slice_ms (or 100 ms when that is NULL or answers <= 0), so
 * deadlines and a dead consumer (-EPIPE, for space waits) are noticed.
 * timeout_ms < 0 waits forever; 0 tries once and answers -ETIMEDOUT. */
typedef struct shmchan_wait_plan {
  int which;
  int (*attempt)(void *context);
  int (*slice_ms)(void *context);
  void *context;
} shmchan_wait_plan_t;
int shmchan_run_wait_plan(shmchan_segment_t *seg, const shmchan_wait_plan_t *plan, int timeout_ms, int spin_us);

/* ---- messages (the C data path) ------------------------------------------ */

/* SPSC only, for C programs. try_send returns 0, -EAGAIN when the ring is full,
 * -EMSGSIZE, -ESHUTDOWN after end. try_receive copies the next message into buf
 * and returns its length, -EAGAIN when empty, -EMSGSIZE when buf is too small
 * (the message stays), -ESHUTDOWN at end of stream, -EBADMSG if the ring is
 * corrupt. The caller must hold the matching role; a producer starts from
 * shmchan_recover_tail(), a consumer from the stored head. */
typedef struct shmchan_cursor {
  uint32_t position;  /* this side's free-running cursor */
  uint32_t other;     /* cached copy of the other side's cursor */
  uint32_t slot;      /* producer slot whose counters this cursor updates */
} shmchan_cursor_t;

int shmchan_spsc_try_send(shmchan_segment_t *seg, shmchan_cursor_t *tail, const void *data, uint32_t len);
int shmchan_spsc_try_receive(shmchan_segment_t *seg, shmchan_cursor_t *head, void *buf, uint32_t cap);

/* The MPSC data path (mpsc.c), the protocol of src/mpsc.ts. Results as for
 * shmchan_spsc_try_send/try_receive. */
typedef struct shmchan_mpsc_writer {
  uint32_t cached_head; /* the consumer's head as last seen */
  uint32_t marker;      /* this producer's claim marker */
  uint32_t slot;
  uint32_t contended;   /* how often a live claim without its length was met at stuck_tail */
  uint32_t stuck_tail, stuck_marker;
} shmchan_mpsc_writer_t;

/* The one reading of the records producers write (mpsc.c), for the MPSC consumer
 * and both fan-out readers, as src/core/mpsc.ts's RecordScanner: from a position
 * on it finishes wrapped claims, turns dead producers' claims into padding, checks
 * each committed record against the ring and asks the plan's visitor what to do
 * with it. Every shared word is read once into a local, and only the local is
 * used. What it steps over without releasing is bounded by the ring's size, so a
 * ring filled with forged records cannot keep it turning. A scanner keeps what
 * outlives one scan. */
typedef struct shmchan_scanner {
  uint32_t reached;         /* the position after what the last scan stepped over */
  uint32_t stuck_at;        /* the position of the unfinished claim waited on */
  int64_t stuck_since_us;
  int waiting_on_claim;     /* the next record is claimed, not committed: sleep briefly */
} shmchan_scanner_t;

/* A committed record a scan met: ring index, length word, type word, position. */
typedef struct shmchan_record {
  uint32_t idx, length, type, position;
} shmchan_record_t;

/* A visitor's answers: stop at the record (the scan answers it), step over it, or
 * step over it having released it (zeroed, the head moved past it: it does not
 * count towards the one lap a scan may step over). */
#define SHMCHAN_SCAN_STOP 0
#define SHMCHAN_SCAN_STEP 1
#define SHMCHAN_SCAN_RELEASED 2

typedef struct shmchan_scan_plan {
  /* A committed record, already checked against the ring (which types it may have
   * is the visitor's to check): a SHMCHAN_SCAN_* answer or -EBADMSG. */
  int (*visit)(shmchan_segment_t *seg, void *context, const shmchan_record_t *record);
  /* NULL for the MPSC consumer: the bytes at its head are free when the head is
   * the tail, so it reads the header first and the tail only when the header is
   * empty, and it turns a dead producer's claim into padding at once (no release
   * can pass its head). Set for a fan-out reader: a position at the tail may hold
   * a full ring's oldest record, so the scan reads the tail first, and a release
   * may overtake the reader, so this must turn the dead claim (its header words as
   * read) into padding under the release lock, or it could write into the record
   * of a later lap: 1, or 0 when it cannot now (the scan then waits as on a live
   * claim). */
  int (*finish_dead_claim)(shmchan_segment_t *seg, void *context, uint32_t idx, uint32_t length, uint32_t type);
  void *context;
} shmchan_scan_plan_t;

void shmchan_scanner_init(shmchan_scanner_t *s);
/* Scans from `position` to the first record the visitor stops at: 1 and *out,
 * -EAGAIN (nothing yet, or an unfinished claim: s->waiting_on_claim), -ESHUTDOWN
 * (ended, all read) or -EBADMSG. s->reached is the position after what it passed. */
int shmchan_scan(shmchan_segment_t *seg, shmchan_scanner_t *s, uint32_t position, const shmchan_scan_plan_t *plan,
                 shmchan_record_t *out);

typedef struct shmchan_mpsc_reader {
  uint32_t head;
  shmchan_scanner_t scanner;
} shmchan_mpsc_reader_t;

void shmchan_mpsc_writer_init(shmchan_mpsc_writer_t *w, shmchan_segment_t *seg);
int shmchan_mpsc_try_send(shmchan_segment_t *seg, shmchan_mpsc_writer_t *w, const void *data, uint32_t len);
void shmchan_mpsc_reader_init(shmchan_mpsc_reader_t *r, shmchan_segment_t *seg);
int shmchan_mpsc_try_receive(shmchan_segment_t *seg, shmchan_mpsc_reader_t *r, void *buf, uint32_t cap);

/* Turns the claim at ring index idx (need bytes, possibly wrapping to offset 0)
 * into padding: a wrapped claim whose record at 0 is committed, or a dead
 * producer's claim (mpsc.c; the fan-out modes use it too). */
void shmchan_finish_as_padding(shmchan_segment_t *seg, uint32_t idx, uint32_t need);

/* The receiving side of the fan-out modes (fanout.c), the protocol of
 * src/core/fanout.ts, mpmc.ts and broadcast.ts; see "Fan-out" in shmchan.h.
 * The caller holds consumer slot `slot` (shmchan_claim_consumer). Results as for
 * shmchan_mpsc_try_receive, and -ENOBUFS: a BROADCAST subscriber under
 * SHMCHAN_OVERFLOW_OVERWRITE was lapped and lost messages (messages_lost grew;
 * the next receive goes on from the oldest message still in the ring). */
#define SHMCHAN_FANOUT_TAKEN_MAX 64u
typedef struct shmchan_fanout_reader {
  uint32_t mode, slot;
  uint32_t marker;          /* MPMC: this consumer's marker */
  uint32_t cursor, lost;    /* BROADCAST: the cursor and lost count as last stored */
  int overwrite;            /* BROADCAST: the channel's overflow is OVERWRITE */
  uint64_t messages_lost;   /* BROADCAST: messages overwritten before this handle read them */
  uint32_t freed;           /* BROADCAST 'block': bytes freed since a producer slept */
  shmchan_scanner_t scanner;
  /* MPMC: records other consumers held at the last scan (position and header as
   * read), checked for dead holders */
  uint32_t taken[SHMCHAN_FANOUT_TAKEN_MAX];
  uint64_t taken_header[SHMCHAN_FANOUT_TAKEN_MAX];
  uint32_t taken_count;
  int64_t last_taker_check_us;
} shmchan_fanout_reader_t;

/* Starts reading in consumer slot `slot` of a channel of this mode (as read at
 * open); a BROADCAST subscriber joins from the oldest message (from_oldest) or
 * the tail. 0 or -EBADMSG. */
int shmchan_fanout_reader_init(shmchan_fanout_reader_t *r, shmchan_segment_t *seg, uint32_t mode, uint32_t slot, int from_oldest);
int shmchan_fanout_try_receive(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, void *buf, uint32_t cap);
/* The sending side: producers write as in MPSC (shmchan_mpsc_try_send); one that
 * finds no room for `need` bytes calls this, with its claim marker, to move the
 * head under the release lock as the mode says (MPMC: over consumed records;
 * BROADCAST: up to the slowest live subscriber, dropping dead ones, or under
 * `overwrite` whole records, pushing lapped subscribers). 1 when the head moved,
 * 0, or -EBADMSG. */
int shmchan_fanout_make_room(shmchan_segment_t *seg, uint32_t mode, int overwrite, uint32_t marker, uint32_t need);

/* The blocking forms are the channel API's shmchan_send and shmchan_receive,
 * which also keep the roles. */

/* Marks the end of the stream. */
void shmchan_segment_end(shmchan_segment_t *seg);

#ifdef __cplusplus
}
#endif
#endif
