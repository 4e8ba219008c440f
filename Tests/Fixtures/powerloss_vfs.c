/*
 * powerloss_vfs.c: a fault-injecting SQLite VFS for the power-loss and disk-fault
 * tests (issue 8).
 * Tests only: never linked into the product. Loaded with LD_PRELOAD into a process
 * that uses the system libsqlite3; a constructor registers it as the default VFS,
 * wrapping the one that was the default ("unix").
 *
 * It plays the disk's write-back cache: every xWrite is held in memory, per open
 * file, until that file's xSync; reads see the held writes (the process reads its
 * own writes, as through the page cache). At a simulated power loss the process
 * ends at once (_exit) and whatever was written but not synced never reaches the
 * file, as on a board that loses power.
 *
 *   POWERLOSS_AT_SYNC=N     the Nth xSync (counted from the start, all files) does
 *                           not happen: the process ends with status 99 instead.
 *   POWERLOSS_AT_WRITE=N    the same at the Nth xWrite (the power goes at any
 *                           moment, not only when SQLite syncs).
 *   POWERLOSS_LOG=path      appends one line per simulated power loss (file, sync
 *                           count, writes dropped), for the test's messages.
 *
 * It also plays a failing disk (I/O errors, a full file system) without ending the
 * process, so the tests see how the agent copes with an error it must survive:
 *
 *   FAULT_EVERY_WRITE=N     every Nth xWrite (counted from the start, all files)
 *                           fails; nothing is written (or held).
 *   FAULT_EVERY_SYNC=N      every Nth xSync fails (held writes stay held until a
 *                           later sync of the file succeeds).
 *   FAULT_ERROR=ioerr|full  what a fault returns: ioerr (the default) is
 *                           SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC, full is
 *                           SQLITE_FULL (ENOSPC).
 *   FAULT_AFTER=M           the first M writes and the first M syncs never fail (let
 *                           a process start before the disk goes bad); default 0.
 *   FAULT_WHILE=path        faults only while the file `path` exists (a test turns
 *                           the bad disk on and off while the process runs).
 *   FAULT_LIMIT=K           at most K faults, then the disk is sound again (a
 *                           process must then heal without a restart); 0: no limit.
 *   FAULT_LOG=path          appends one line per injected fault ("pid P fault K: ...").
 *
 * Writes are held (the write-back cache above) only when a power loss is asked for;
 * otherwise they reach the file at once, as through the page cache that every
 * process shares, so other processes (the CLI, the tests) read the database as it
 * is while the faults go on.
 *
 * Simplifications (stated, so nobody reads more into the test): xTruncate and
 * xClose first apply the held writes (as if the OS had written them back by then);
 * shared memory (-shm) passes through (after a power loss SQLite rebuilds it from the
 * WAL). Build: cc -shared -fPIC -o powerloss_vfs.so powerloss_vfs.c -lsqlite3
 */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct held {
	sqlite3_int64 offset;
	int size;
	unsigned char *data;
};

struct pl_file {
	sqlite3_file base; /* first: SQLite sees this */
	sqlite3_file *real; /* the wrapped VFS's file, allocated after ours */
	const char *name;
	struct held *writes;
	int count, capacity;
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs pl_vfs;
static long syncs, writes, power_loss_at, power_loss_at_write;
static long fault_every_write, fault_every_sync, fault_after, fault_limit, faults;
static int fault_full;
static const char *fault_while;

/* Whether operation number `n` (a write or a sync) is one that fails. */
static int faulty(long n, long every)
{
	if (fault_limit > 0 && faults >= fault_limit) return 0;
	if (fault_while && access(fault_while, F_OK) != 0) return 0;
	return every > 0 && n > fault_after && (n - fault_after) % every == 0;
}

static int inject(struct pl_file *f, const char *what, long n, int ioerr)
{
	int rc = fault_full ? SQLITE_FULL : ioerr;
	faults++;
	const char *log = getenv("FAULT_LOG");
	if (log) {
		FILE *out = fopen(log, "a");
		if (out) {
			fprintf(out, "pid %ld fault %ld: %s %ld (%s) -> %s\n", (long)getpid(), faults, what, n,
				f->name ? f->name : "?", fault_full ? "SQLITE_FULL" : "SQLITE_IOERR");
			fclose(out);
		}
	}
	return rc;
}

static int apply_held(struct pl_file *f)
{
	for (int i = 0; i < f->count; i++) {
		int rc = f->real->pMethods->xWrite(f->real, f->writes[i].data, f->writes[i].size, f->writes[i].offset);
		if (rc != SQLITE_OK) return rc;
	}
	for (int i = 0; i < f->count; i++) free(f->writes[i].data);
	f->count = 0;
	return SQLITE_OK;
}

static void power_loss(struct pl_file *f)
{
	const char *log = getenv("POWERLOSS_LOG");
	if (log) {
		FILE *out = fopen(log, "a");
		if (out) {
			fprintf(out, "power loss at sync %ld, write %ld (%s): %d unsynced write(s) of this file dropped\n",
				syncs, writes, f->name ? f->name : "?", f->count);
			fclose(out);
		}
	}
	_exit(99);
}

static int pl_close(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;
	apply_held(f);
	free(f->writes);
	int rc = f->real->pMethods->xClose(f->real);
	return rc;
}

static int pl_read(sqlite3_file *file, void *buf, int amount, sqlite3_int64 offset)
{
	struct pl_file *f = (struct pl_file *)file;
	int rc = f->real->pMethods->xRead(f->real, buf, amount, offset);
	int covered = 0;
	for (int i = 0; i < f->count; i++) {
		struct held *w = &f->writes[i];
		sqlite3_int64 lo = w->offset > offset ? w->offset : offset;
		sqlite3_int64 hi = w->offset + w->size < offset + amount ? w->offset + w->size : offset + amount;
		if (lo >= hi) continue;
		memcpy((unsigned char *)buf + (lo - offset), w->data + (lo - w->offset), (size_t)(hi - lo));
		if (lo == offset && hi == offset + amount) covered = 1;
	}
	if (rc == SQLITE_IOERR_SHORT_READ) {
		/* A read past the file's end that held writes fill completely is not short. */
		if (covered) return SQLITE_OK;
		sqlite3_int64 end = 0;
		for (int i = 0; i < f->count; i++)
			if (f->writes[i].offset + f->writes[i].size > end) end = f->writes[i].offset + f->writes[i].size;
		if (end >= offset + amount) return SQLITE_OK;
	}
	return rc;
}

static int pl_write(sqlite3_file *file, const void *buf, int amount, sqlite3_int64 offset)
{
	struct pl_file *f = (struct pl_file *)file;
	writes++;
	if (power_loss_at_write > 0 && writes >= power_loss_at_write) power_loss(f);
	if (faulty(writes, fault_every_write)) return inject(f, "write", writes, SQLITE_IOERR_WRITE);
	if (power_loss_at <= 0 && power_loss_at_write <= 0) return f->real->pMethods->xWrite(f->real, buf, amount, offset);
	if (f->count == f->capacity) {
		int capacity = f->capacity ? f->capacity * 2 : 64;
		struct held *grown = realloc(f->writes, sizeof *grown * (size_t)capacity);
		if (!grown) return SQLITE_IOERR_NOMEM;
		f->writes = grown;
		f->capacity = capacity;
	}
	unsigned char *copy = malloc((size_t)amount);
	if (!copy) return SQLITE_IOERR_NOMEM;
	memcpy(copy, buf, (size_t)amount);
	f->writes[f->count++] = (struct held){offset, amount, copy};
	return SQLITE_OK;
}

static int pl_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct pl_file *f = (struct pl_file *)file;
	int rc = apply_held(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int pl_sync(sqlite3_file *file, int flags)
{
	struct pl_file *f = (struct pl_file *)file;
	syncs++;
	if (power_loss_at > 0 && syncs >= power_loss_at) power_loss(f);
	if (faulty(syncs, fault_every_sync)) return inject(f, "sync", syncs, SQLITE_IOERR_FSYNC);
	int rc = apply_held(f);
	if (rc != SQLITE_OK) return rc;
	return f->real->pMethods->xSync(f->real, flags);
}

static int pl_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct pl_file *f = (struct pl_file *)file;
	int rc = f->real->pMethods->xFileSize(f->real, size);
	if (rc != SQLITE_OK) return rc;
	for (int i = 0; i < f->count; i++)
		if (f->writes[i].offset + f->writes[i].size > *size) *size = f->writes[i].offset + f->writes[i].size;
	return SQLITE_OK;
}

#define FORWARD(name, args, call) \
	static int pl_##name args \
	{ \
		struct pl_file *f = (struct pl_file *)file; \
		return f->real->pMethods->call; \
	}

FORWARD(lock, (sqlite3_file * file, int level), xLock(f->real, level))
FORWARD(unlock, (sqlite3_file * file, int level), xUnlock(f->real, level))
FORWARD(check_lock, (sqlite3_file * file, int *out), xCheckReservedLock(f->real, out))
FORWARD(control, (sqlite3_file * file, int op, void *arg), xFileControl(f->real, op, arg))
FORWARD(sector_size, (sqlite3_file * file), xSectorSize(f->real))
FORWARD(device_characteristics, (sqlite3_file * file), xDeviceCharacteristics(f->real))
FORWARD(shm_map, (sqlite3_file * file, int page, int size, int extend, void volatile **out),
	xShmMap(f->real, page, size, extend, out))
FORWARD(shm_lock, (sqlite3_file * file, int offset, int n, int flags), xShmLock(f->real, offset, n, flags))
FORWARD(shm_unmap, (sqlite3_file * file, int deleteFlag), xShmUnmap(f->real, deleteFlag))

static void pl_shm_barrier(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;
	f->real->pMethods->xShmBarrier(f->real);
}

/* No memory-mapped reads: they would bypass the held writes. */
static int pl_fetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out)
{
	(void)file;
	(void)offset;
	(void)amount;
	*out = 0;
	return SQLITE_OK;
}

static int pl_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *p)
{
	(void)file;
	(void)offset;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods pl_methods = {
	3, pl_close, pl_read, pl_write, pl_truncate, pl_sync, pl_file_size, pl_lock, pl_unlock, pl_check_lock,
	pl_control, pl_sector_size, pl_device_characteristics, pl_shm_map, pl_shm_lock, pl_shm_barrier,
	pl_shm_unmap, pl_fetch, pl_unfetch,
};

static int pl_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	(void)vfs;
	struct pl_file *f = (struct pl_file *)file;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	f->name = name;
	int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	f->base.pMethods = f->real->pMethods ? &pl_methods : 0;
	return rc;
}

#define VFS_FORWARD(name, args, call) \
	static int pl_##name args \
	{ \
		(void)vfs; \
		return real_vfs->call; \
	}

VFS_FORWARD(delete, (sqlite3_vfs * vfs, const char *name, int sync), xDelete(real_vfs, name, sync))
VFS_FORWARD(access, (sqlite3_vfs * vfs, const char *name, int flags, int *out), xAccess(real_vfs, name, flags, out))
VFS_FORWARD(full_pathname, (sqlite3_vfs * vfs, const char *name, int n, char *out),
	xFullPathname(real_vfs, name, n, out))
VFS_FORWARD(randomness, (sqlite3_vfs * vfs, int n, char *out), xRandomness(real_vfs, n, out))
VFS_FORWARD(sleep, (sqlite3_vfs * vfs, int us), xSleep(real_vfs, us))
VFS_FORWARD(current_time, (sqlite3_vfs * vfs, double *out), xCurrentTime(real_vfs, out))
VFS_FORWARD(last_error, (sqlite3_vfs * vfs, int n, char *out), xGetLastError(real_vfs, n, out))
VFS_FORWARD(current_time64, (sqlite3_vfs * vfs, sqlite3_int64 *out), xCurrentTimeInt64(real_vfs, out))

static long env_long(const char *name)
{
	const char *value = getenv(name);
	return value ? atol(value) : 0;
}

__attribute__((constructor)) static void pl_register(void)
{
	power_loss_at = env_long("POWERLOSS_AT_SYNC");
	power_loss_at_write = env_long("POWERLOSS_AT_WRITE");
	fault_every_write = env_long("FAULT_EVERY_WRITE");
	fault_every_sync = env_long("FAULT_EVERY_SYNC");
	fault_after = env_long("FAULT_AFTER");
	fault_limit = env_long("FAULT_LIMIT");
	fault_while = getenv("FAULT_WHILE");
	const char *error = getenv("FAULT_ERROR");
	fault_full = error && strcmp(error, "full") == 0;
	real_vfs = sqlite3_vfs_find(0);
	if (!real_vfs) return;
	pl_vfs = (sqlite3_vfs){
		2, (int)sizeof(struct pl_file) + real_vfs->szOsFile, real_vfs->mxPathname, 0, "powerloss", 0,
		pl_open, pl_delete, pl_access, pl_full_pathname, 0, 0, 0, 0, pl_randomness, pl_sleep, pl_current_time,
		pl_last_error, pl_current_time64, 0, 0, 0,
	};
	sqlite3_vfs_register(&pl_vfs, 1);
}
