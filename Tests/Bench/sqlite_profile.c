/*
 * sqlite_profile.c: an LD_PRELOAD shim that says where a process spends its SQLite
 * time, per SQL text: how often each statement is compiled (sqlite3_prepare_v2/v3),
 * stepped (sqlite3_step) and run through sqlite3_exec, and the wall time of each;
 * COMMITs made while `PRAGMA synchronous=FULL` is set are counted apart.
 * Used by .ci/bench.sh (BENCH_PROFILE=1) to explain the agent's drain rate without
 * touching its code.
 *
 * At exit it writes a table, most expensive first, to $SQLITE_PROFILE_OUT (or
 * stderr):  total_ms prepares prepare_ms steps step_ms execs exec_ms  sql
 *
 * build: cc -O2 -shared -fPIC -o sqlite_profile.so sqlite_profile.c -ldl
 * use:   LD_PRELOAD=./sqlite_profile.so SQLITE_PROFILE_OUT=profile.txt PROGRAM ...
 *        SQLITE_PROFILE_NOSYNC=1 also turns fsync/fdatasync into no-ops (as
 *        eatmydata does), to measure what durability costs. Never in production.
 * One thread assumed (the agent has one).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 1024

struct entry {
	char *sql;
	uint64_t hash;
	long long prepares, steps, execs;
	long long prepare_ns, step_ns, exec_ns;
};

static struct entry table[SLOTS];
static int depth; /* > 0 inside sqlite3_exec: its inner calls are not counted twice */
static int full;  /* the last "PRAGMA synchronous=..." set FULL (or EXTRA) */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The entry of `sql` (its first statement, whitespace squeezed, 160 characters at most). */
static struct entry *entry_for(const char *sql)
{
	char key[161];
	size_t n = 0;
	int blank = 0;
	for (const char *p = sql ? sql : "(null)"; *p && n < sizeof key - 1; p++) {
		char c = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
		if (c == ' ' && (blank || n == 0)) continue;
		blank = c == ' ';
		key[n++] = c;
	}
	key[n] = '\0';
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	for (size_t i = 0; i < SLOTS; i++) {
		struct entry *e = &table[(h + i) % SLOTS];
		if (!e->sql) {
			e->sql = strdup(key);
			e->hash = h;
			return e;
		}
		if (e->hash == h && strcmp(e->sql, key) == 0) return e;
	}
	return &table[0];
}

#define REAL(name) \
	static __typeof__(name) *real; \
	if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int bytes, sqlite3_stmt **stmt, const char **tail)
{
	REAL(sqlite3_prepare_v2);
	long long t = now_ns();
	int rc = real(db, sql, bytes, stmt, tail);
	if (depth == 0) {
		struct entry *e = entry_for(sql);
		e->prepares++;
		e->prepare_ns += now_ns() - t;
	}
	return rc;
}

int sqlite3_prepare_v3(
	sqlite3 *db, const char *sql, int bytes, unsigned flags, sqlite3_stmt **stmt, const char **tail)
{
	REAL(sqlite3_prepare_v3);
	long long t = now_ns();
	int rc = real(db, sql, bytes, flags, stmt, tail);
	if (depth == 0) {
		struct entry *e = entry_for(sql);
		e->prepares++;
		e->prepare_ns += now_ns() - t;
	}
	return rc;
}

int sqlite3_step(sqlite3_stmt *stmt)
{
	REAL(sqlite3_step);
	long long t = now_ns();
	int rc = real(stmt);
	if (depth == 0) {
		struct entry *e = entry_for(sqlite3_sql(stmt));
		e->steps++;
		e->step_ns += now_ns() - t;
	}
	return rc;
}

int sqlite3_exec(sqlite3 *db, const char *sql, int (*callback)(void *, int, char **, char **), void *arg, char **err)
{
	REAL(sqlite3_exec);
	long long t = now_ns();
	depth++;
	int rc = real(db, sql, callback, arg, err);
	depth--;
	if (sql && strncmp(sql, "PRAGMA synchronous=", 19) == 0) {
		full = strstr(sql, "FULL") || strstr(sql, "EXTRA") || strcmp(sql + 19, "2") == 0 || strcmp(sql + 19, "3") == 0;
	}
	/* A COMMIT with synchronous=FULL waits for fdatasync: count those apart. */
	struct entry *e = entry_for(sql && full && strcmp(sql, "COMMIT") == 0 ? "COMMIT (synchronous=FULL)" : sql);
	e->execs++;
	e->exec_ns += now_ns() - t;
	return rc;
}

static int no_sync(void)
{
	static int value = -1;
	if (value < 0) {
		const char *v = getenv("SQLITE_PROFILE_NOSYNC");
		value = v && strcmp(v, "1") == 0;
	}
	return value;
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	return no_sync() ? 0 : real(fd);
}

int fsync(int fd)
{
	REAL(fsync);
	return no_sync() ? 0 : real(fd);
}

static int by_total(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	long long tx = x->prepare_ns + x->step_ns + x->exec_ns, ty = y->prepare_ns + y->step_ns + y->exec_ns;
	return tx < ty ? 1 : tx > ty ? -1 : 0;
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("SQLITE_PROFILE_OUT");
	FILE *out = path ? fopen(path, "w") : stderr;
	if (!out) out = stderr;
	qsort(table, SLOTS, sizeof table[0], by_total);
	fprintf(out, "%9s %9s %10s %9s %9s %7s %9s  %s\n", "total_ms", "prepares", "prepare_ms", "steps", "step_ms",
		"execs", "exec_ms", "sql");
	for (size_t i = 0; i < SLOTS && table[i].sql; i++) {
		struct entry *e = &table[i];
		fprintf(out, "%9.1f %9lld %10.1f %9lld %9.1f %7lld %9.1f  %s\n",
			(e->prepare_ns + e->step_ns + e->exec_ns) / 1e6, e->prepares, e->prepare_ns / 1e6, e->steps,
			e->step_ns / 1e6, e->execs, e->exec_ns / 1e6, e->sql);
	}
	if (out != stderr) fclose(out);
}
