/* System V shared memory segments: shmget, shmat, IPC_STAT, shmdt, IPC_RMID, and
 * the semaphore set (semget) that is created and removed with each segment.
 *
 * The set has the segment's key, so `ipcs` lists both under one key and
 * `ipcrm -M KEY -S KEY` removes both. The header also stores the set's id: an
 * opener checks that the set it finds by key is the one the creator made. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include "platform.h"

uint32_t shmchan_sysv_key_of_name(const char *name) {
  if (name[0] == '/') name++;
  uint32_t hash = 2166136261u; /* FNV-1a, 32 bits */
  for (; *name; name++) {
    hash ^= (uint8_t)*name;
    hash *= 16777619u;
  }
  return hash != 0 ? hash : 1; /* 0 is IPC_PRIVATE: a key nobody else can find */
}

/* What create and open begin with: no ids yet, the name checked, a key given. */
static int begin(shmchan_segment_t *seg, const char *name, uint32_t key) {
  segment_reset(seg);
  seg->shmid = seg->semid = -1;
  int rc = shmchan_segment_name(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  return key == 0 ? -EINVAL : 0;
}

int shmchan_segment_create_sysv(shmchan_segment_t *seg, const char *name, uint32_t key, const shmchan_segment_options_t *opt) {
  int rc = begin(seg, name, key);
  if (rc) return rc;
  if ((rc = shmchan_check_segment_options(opt))) return rc;

  size_t size = (size_t)SHMCHAN_HEADER_SIZE + opt->capacity;
  /* System V permissions are not filtered by the umask: these bits apply exactly. */
  seg->syscall = "shmget";
  int shmid = shmget((key_t)key, size, IPC_CREAT | IPC_EXCL | (int)opt->permissions);
  if (shmid < 0) return -errno;
  /* Linux initialises every semaphore of a new set to 0, which is what wait.c
   * needs; the roles' semaphores start free, at 1. */
  seg->syscall = "semget";
  uint32_t nsems = shmchan_sysv_nsems(opt->mode);
  int semid = semget((key_t)key, (int)nsems, IPC_CREAT | IPC_EXCL | (int)opt->permissions);
  if (semid < 0) goto fail;
  seg->syscall = "semctl";
  unsigned short values[SHMCHAN_SYSV_NSEMS_FANOUT] = {0};
  for (unsigned i = SHMCHAN_SYSV_SEM_CREATOR; i < nsems; i++) values[i] = 1; /* roles, sleeper slots, consumer slots: free */
  if (semctl(semid, 0, SETALL, (union semun){.array = values}) != 0) goto fail;
  seg->syscall = "shmat";
  void *base = shmat(shmid, NULL, 0);
  if (base == (void *)-1) goto fail;

  segment_mapped(seg, base, SHMCHAN_BACKEND_SYSV, &(shmchan_header_facts_t){.segment_size = size, .mode = opt->mode, .codec = opt->codec});
  seg->key = key;
  seg->shmid = shmid;
  seg->semid = semid;
  seg->syscall = "semop";
  if ((rc = shmchan_lock_open(seg, 1)) != 0) {
    shmdt(base);
    seg->base = NULL;
    errno = -rc;
    goto fail;
  }
  seg->syscall = NULL;
  *U32_AT(base, SHMCHAN_OFF_SEMID) = (uint32_t)semid; /* published with the rest, by the magic */
  shmchan_header_init(base, seg->name, SHMCHAN_BACKEND_SYSV, key, opt);
  return 0;

fail:
  rc = -errno;
  if (semid >= 0) semctl(semid, 0, IPC_RMID);
  shmctl(shmid, IPC_RMID, NULL);
  return rc;
}

/* Copies the mapped header's name field into out (SHMCHAN_NAME_MAX + 1 bytes),
 * once: 0 if the copy is NUL-terminated, -EBADMSG if not. The mapping itself is
 * never scanned twice, since another process may remove its NUL in between. */
static int stored_name(const uint8_t *base, char *out) {
  memcpy(out, base + SHMCHAN_OFF_NAME, SHMCHAN_NAME_MAX + 1);
  return memchr(out, 0, SHMCHAN_NAME_MAX + 1) != NULL ? 0 : -EBADMSG;
}

/* 1 if the mapped header's name equals name. */
static int header_names(const uint8_t *base, const char *name) {
  if (name[0] == '/') name++;
  char stored[SHMCHAN_NAME_MAX + 1];
  return stored_name(base, stored) == 0 && strcmp(stored, name) == 0;
}

/* The semaphore set of a validated header: the set with the key must be the one
 * the creator recorded, with the number of semaphores wait.c indexes. */
static int find_semaphores(const uint8_t *base, uint32_t key, uint32_t mode, int *semid) {
  int found = semget((key_t)key, 0, 0);
  if (found < 0) return -errno; /* ENOENT: the channel is being removed */
  if ((uint32_t)found != load_u32(base, SHMCHAN_OFF_SEMID)) return -EBADMSG;
  struct semid_ds ds;
  if (semctl(found, 0, IPC_STAT, (union semun){.buf = &ds}) != 0) return -errno;
  if (ds.sem_nsems != shmchan_sysv_nsems(mode)) return -EBADMSG;
  *semid = found;
  return 0;
}

/* A segment attached by key, to open it or to look at its header. */
typedef struct attachment {
  int shmid;           /* -1 when no segment has the key */
  struct shmid_ds ds;  /* its IPC_STAT */
  uint8_t *base;
  const char *syscall; /* after a failure: the call that failed */
  shmchan_header_facts_t facts; /* once the header is valid: what it validated */
} attachment_t;

/* Attaches the segment with this key (shmflg: 0, or SHM_RDONLY to look only).
 * 0, -errno, or -EPROTONOSUPPORT for a segment too small to hold a header: the
 * size is fixed at shmget, so such a segment is not a channel's. */
static int attach_by_key(attachment_t *a, uint32_t key, int shmflg) {
  a->base = NULL;
  a->syscall = "shmget";
  a->shmid = shmget((key_t)key, 0, 0);
  if (a->shmid < 0) return -errno;
  a->syscall = "shmctl";
  if (shmctl(a->shmid, IPC_STAT, &a->ds) != 0) return -errno;
  if (a->ds.shm_segsz < SHMCHAN_HEADER_SIZE) return -EPROTONOSUPPORT;
  a->syscall = "shmat";
  void *base = shmat(a->shmid, NULL, shmflg);
  if (base == (void *)-1) return -errno;
  a->base = base;
  a->syscall = NULL;
  return 0;
}

int shmchan_sysv_header_validate(const uint8_t *base, size_t mapped_size, const char *name, uint32_t key,
                                 shmchan_header_facts_t *facts) {
  int rc = shmchan_header_validate(base, mapped_size, facts);
  if (rc != 0) return rc;
  if (load_u32(base, SHMCHAN_OFF_BACKEND) != SHMCHAN_BACKEND_SYSV || load_u32(base, SHMCHAN_OFF_KEY) != key) return -EBADMSG;
  return header_names(base, name) ? 0 : -EEXIST; /* another channel's key */
}

/* What shmchan_await_header retries: the header of the segment being opened. */
typedef struct sysv_opening {
  attachment_t *a;
  const char *name;
  uint32_t key;
} sysv_opening_t;

static int check_attached(void *context) {
  sysv_opening_t *o = context;
  return shmchan_sysv_header_validate(o->a->base, o->a->ds.shm_segsz, o->name, o->key, &o->a->facts);
}

int shmchan_segment_open_sysv(shmchan_segment_t *seg, const char *name, uint32_t key, int timeout_ms, int inspect) {
  int rc = begin(seg, name, key);
  if (rc) return rc;
  attachment_t a;
  rc = attach_by_key(&a, key, 0);
  seg->syscall = a.syscall;
  if (rc) return rc;

  uint8_t *base = a.base;
  rc = shmchan_await_header(check_attached, &(sysv_opening_t){&a, name, key}, timeout_ms);
  int semid = -1;
  if (rc == 0) rc = find_semaphores(base, key, a.facts.mode, &semid);
  if (rc != 0) {
    shmdt(base);
    return rc;
  }
  /* The size the check validated (header + capacity <= shm_segsz), not the
   * header's word read again: another process may have rewritten it since. A
   * larger segment's tail is never used. */
  segment_mapped(seg, base, SHMCHAN_BACKEND_SYSV, &a.facts);
  seg->key = key;
  seg->shmid = a.shmid;
  seg->semid = semid;
  /* A replacer holds the channel (-EAGAIN) for a moment; once removed, it is gone. */
  seg->syscall = "semop";
  int64_t deadline = shmchan_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  while (!inspect && (rc = shmchan_lock_open(seg, 0)) == -EAGAIN && shmchan_now_ms() < deadline) usleep(1000);
  if (rc == 0) {
    seg->syscall = NULL;
    return 0;
  }
  shmdt(base);
  seg->base = NULL;
  return rc == -EAGAIN ? -ETIMEDOUT : rc == -EIDRM || rc == -EINVAL ? -ENOENT : rc;
}

int shmchan_segment_remove_stale_sysv(const char *name, uint32_t key, int force, uint64_t *unread) {
  *unread = 0;
  int rc = shmchan_check_name(name);
  if (rc) return rc;
  if (key == 0) return -EINVAL;
  attachment_t a;
  if ((rc = attach_by_key(&a, key, SHM_RDONLY)) != 0) return rc;
  const uint8_t *base = a.base;
  int semid = -1;
  shmchan_header_facts_t facts;
  rc = shmchan_sysv_header_validate(base, a.ds.shm_segsz, name, key, &facts);
  if (rc == 0) rc = find_semaphores(base, key, facts.mode, &semid);
  if (rc == 0) {
    /* in one step: nobody has it open, and from now on nobody can open it */
    struct sembuf hold[2] = {{.sem_num = SHMCHAN_SYSV_SEM_OPEN, .sem_op = 0, .sem_flg = IPC_NOWAIT},
                             {.sem_num = SHMCHAN_SYSV_SEM_REPLACING, .sem_op = 1, .sem_flg = SEM_UNDO}};
    if (semop(semid, hold, 2) != 0) rc = errno == EAGAIN ? -EBUSY : -errno;
  }
  if (rc == 0) {
    *unread = shmchan_unread_messages(base);
    if (*unread != 0 && !force) {
      struct sembuf release = {.sem_num = SHMCHAN_SYSV_SEM_REPLACING, .sem_op = -1, .sem_flg = SEM_UNDO};
      semop(semid, &release, 1);
      rc = -ENOTEMPTY;
    } else {
      shmchan_sysv_remove_ids(a.shmid, semid);
    }
  }
  shmdt(base);
  return rc;
}

/* A segment whose creator died between shmget and publishing the header: all
 * zeros, nobody attached, and shaped like a shmchan segment. */
static int unfinished_channel(const uint8_t *base, const struct shmid_ds *ds) {
  size_t capacity = ds->shm_segsz - SHMCHAN_HEADER_SIZE;
  return load_u32(base, SHMCHAN_OFF_MAGIC) == 0 && ds->shm_nattch == 0 && capacity >= SHMCHAN_MIN_CAPACITY &&
         capacity <= SHMCHAN_MAX_CAPACITY && (capacity & (capacity - 1)) == 0;
}

/* The semaphore set with this key if it looks like a shmchan set; -1 otherwise. */
static int shmchan_semaphores_of(uint32_t key) {
  int semid = semget((key_t)key, 0, 0);
  struct semid_ds ds;
  if (semid < 0 || semctl(semid, 0, IPC_STAT, (union semun){.buf = &ds}) != 0) return -1;
  return ds.sem_nsems == SHMCHAN_SYSV_NSEMS || ds.sem_nsems == SHMCHAN_SYSV_NSEMS_FANOUT ? semid : -1;
}

int shmchan_segment_unlink_sysv(const char *name, uint32_t key) {
  int rc = shmchan_check_name(name);
  if (rc) return rc;
  if (key == 0) return -EINVAL;
  attachment_t a;
  rc = attach_by_key(&a, key, SHM_RDONLY);
  if (rc == -ENOENT && a.shmid < 0) {
    /* The segment is gone (ipcrm -m with nobody attached); its set may remain. */
    int orphan = shmchan_semaphores_of(key);
    if (orphan < 0) return -ENOENT;
    return semctl(orphan, 0, IPC_RMID) == 0 ? 0 : -errno;
  }
  if (rc) return rc;
  const uint8_t *base = a.base;
  /* Only the name decides whose segment this is: a corrupt or other-version
   * channel of this name can still be removed. */
  int semid = -1;
  if (load_u32(base, SHMCHAN_OFF_MAGIC) == SHMCHAN_MAGIC) {
    if (!header_names(base, name)) rc = -EEXIST;
    else if (find_semaphores(base, key, load_u32(base, SHMCHAN_OFF_MODE), &semid) != 0) semid = -1;
  } else if (unfinished_channel(base, &a.ds)) {
    semid = shmchan_semaphores_of(key);
  } else {
    rc = -EPROTONOSUPPORT;
  }
  shmdt(base);
  if (rc) return rc;
  if (shmctl(a.shmid, IPC_RMID, NULL) != 0) return -errno;
  if (semid >= 0) semctl(semid, 0, IPC_RMID);
  return 0;
}

void shmchan_sysv_remove_ids(int shmid, int semid) {
  /* The segment first, so that no new opener finds it without its set. */
  if (shmid >= 0) shmctl(shmid, IPC_RMID, NULL);
  if (semid >= 0) semctl(semid, 0, IPC_RMID);
}

int shmchan_sysv_holder(uint32_t key, char *out) {
  attachment_t a;
  int rc = attach_by_key(&a, key, SHM_RDONLY);
  if (rc) return rc;
  const uint8_t *base = a.base;
  uint32_t magic = load_u32(base, SHMCHAN_OFF_MAGIC);
  rc = magic == 0 ? -EAGAIN : -EPROTONOSUPPORT;
  if (magic == SHMCHAN_MAGIC && stored_name(base, out) == 0) rc = 0;
  shmdt(base);
  return rc;
}

void shmchan_sysv_detach(shmchan_segment_t *seg) {
  shmdt(seg->base);
  /* A removed segment is destroyed by its last detach. If that was ours, the
   * semaphore set has outlived it (a bare `ipcrm -m`): it goes now. */
  struct shmid_ds ds;
  if (shmctl(seg->shmid, IPC_STAT, &ds) != 0 && (errno == EINVAL || errno == EIDRM)) semctl(seg->semid, 0, IPC_RMID);
}
