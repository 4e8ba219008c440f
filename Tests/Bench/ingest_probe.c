/*
 * ingest_probe.c: an LD_PRELOAD shim that times a process's reading-cache
 * transactions, so the agent (which cannot be changed for a benchmark) and the C
 * baseline are measured the same way.
 *
 * A transaction runs from sqlite3_exec("BEGIN ...") to the end of
 * sqlite3_exec("COMMIT"); it counts when at least one step of a statement whose SQL
 * starts with "INSERT INTO readings" changed a row in it (the agent's
 * Readings.store: one transaction per flush, a readings row and an outbox row per
 * new reading). For those it adds up:
 *   - wall time (CLOCK_MONOTONIC) and this thread's CPU time
 *     (CLOCK_THREAD_CPUTIME_ID) from just before BEGIN to just after COMMIT;
 *   - rows inserted into readings (sqlite3_changes after each step) and steps of
 *     "INSERT INTO outbox" statements (outbox_<class> tables included).
 * Transactions that insert no reading (events, batches, ledger) are not counted.
 * fsync/fdatasync calls (WAL checkpoints) are counted and timed apart, inside counted
 * transactions and outside them (a checkpoint runs in whichever commit fills the WAL).
 *
 * At exit it writes one line to $INGEST_PROBE_OUT (or stderr):
 *   ingest txns=N rows=R outbox=O rollbacks=B wall_us=W cpu_us=C first_ms=F last_ms=L
 *          syncs_in=S sync_in_us=T syncs_out=S2 sync_out_us=T2
 * (first_ms/last_ms: wall clock of the first BEGIN and the last COMMIT counted), and,
 * when $INGEST_PROBE_BATCHES is set, one line per counted transaction, in order:
 *   READINGS START_US
 * its readings and when it began, in microseconds after the first one began (the C
 * baseline replays that batching and that timing).
 *
 * build: cc -O2 -shared -fPIC -o ingest_probe.so ingest_probe.c -ldl
 * use:   LD_PRELOAD=./ingest_probe.so INGEST_PROBE_OUT=probe.txt PROGRAM ...
 * One thread assumed (the agent has one; so has the baseline).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REAL(name) \
	static __typeof__(name) *real; \
	if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* The open transaction. */
static int in_txn;
static long long txn_wall0, txn_cpu0, txn_rows, txn_outbox, txn_started_ms;

/* The counted transactions, summed. */
static long long txns, rows, outbox_rows, rollbacks, wall_ns, cpu_ns, first_ms = -1, last_ms = -1;

/* fsync/fdatasync inside counted transactions (open ones, not yet known to count: moved
 * over at COMMIT) and outside them. */
static long long txn_syncs, txn_sync_ns, syncs_in, sync_in_ns, syncs_out, sync_out_ns;

/* Readings and start (ns after the first) of each counted transaction, in order. */
struct batch {
	long long rows, start_ns;
};
static struct batch *batches;
static size_t batch_count, batch_capacity;
static long long first_wall0 = -1;

static long long clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* True when `sql`, after leading blanks, starts with `prefix` (ASCII, any case). */
static int starts_with(const char *sql, const char *prefix)
{
	if (!sql) return 0;
	while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r') sql++;
	return strncasecmp(sql, prefix, strlen(prefix)) == 0;
}

static void remember_batch(long long n, long long start_ns)
{
	if (batch_count == batch_capacity) {
		size_t capacity = batch_capacity ? batch_capacity * 2 : 4096;
		struct batch *grown = realloc(batches, capacity * sizeof *grown);
		if (!grown) return; /* the list is then short; ingest_c checks its sum */
		batches = grown;
		batch_capacity = capacity;
	}
	batches[batch_count++] = (struct batch){n, start_ns};
}

int sqlite3_step(sqlite3_stmt *stmt)
{
	REAL(sqlite3_step);
	int rc = real(stmt);
	if (in_txn && rc == SQLITE_DONE) {
		const char *sql = sqlite3_sql(stmt);
		if (starts_with(sql, "INSERT INTO readings")) {
			txn_rows += sqlite3_changes(sqlite3_db_handle(stmt));
		} else if (starts_with(sql, "INSERT INTO outbox")) {
			txn_outbox++;
		}
	}
	return rc;
}

int sqlite3_exec(sqlite3 *db, const char *sql, int (*callback)(void *, int, char **, char **), void *arg, char **err)
{
	REAL(sqlite3_exec);
	if (starts_with(sql, "BEGIN")) {
		txn_wall0 = clock_ns(CLOCK_MONOTONIC);
		txn_cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		txn_started_ms = clock_ns(CLOCK_REALTIME) / 1000000;
		int rc = real(db, sql, callback, arg, err);
		in_txn = rc == SQLITE_OK;
		txn_rows = 0;
		txn_outbox = 0;
		txn_syncs = 0;
		txn_sync_ns = 0;
		return rc;
	}
	int rc = real(db, sql, callback, arg, err);
	if (!in_txn) return rc;
	if (starts_with(sql, "COMMIT") || starts_with(sql, "END")) {
		in_txn = 0;
		if (rc == SQLITE_OK && txn_rows > 0) {
			wall_ns += clock_ns(CLOCK_MONOTONIC) - txn_wall0;
			cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - txn_cpu0;
			txns++;
			rows += txn_rows;
			outbox_rows += txn_outbox;
			if (first_ms < 0) first_ms = txn_started_ms;
			if (first_wall0 < 0) first_wall0 = txn_wall0;
			last_ms = clock_ns(CLOCK_REALTIME) / 1000000;
			remember_batch(txn_rows, txn_wall0 - first_wall0);
			syncs_in += txn_syncs;
			sync_in_ns += txn_sync_ns;
		} else {
			if (rc != SQLITE_OK) rollbacks++;
			syncs_out += txn_syncs;
			sync_out_ns += txn_sync_ns;
		}
	} else if (starts_with(sql, "ROLLBACK")) {
		in_txn = 0;
		if (txn_rows > 0) rollbacks++;
		syncs_out += txn_syncs;
		sync_out_ns += txn_sync_ns;
	}
	return rc;
}

static void count_sync(long long ns)
{
	if (in_txn) {
		txn_syncs++;
		txn_sync_ns += ns;
	} else {
		syncs_out++;
		sync_out_ns += ns;
	}
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	long long t = clock_ns(CLOCK_MONOTONIC);
	int rc = real(fd);
	count_sync(clock_ns(CLOCK_MONOTONIC) - t);
	return rc;
}

int fsync(int fd)
{
	REAL(fsync);
	long long t = clock_ns(CLOCK_MONOTONIC);
	int rc = real(fd);
	count_sync(clock_ns(CLOCK_MONOTONIC) - t);
	return rc;
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("INGEST_PROBE_OUT");
	FILE *out = path ? fopen(path, "w") : stderr;
	if (!out) out = stderr;
	fprintf(out,
		"ingest txns=%lld rows=%lld outbox=%lld rollbacks=%lld wall_us=%lld cpu_us=%lld first_ms=%lld last_ms=%lld "
		"syncs_in=%lld sync_in_us=%lld syncs_out=%lld sync_out_us=%lld\n",
		txns, rows, outbox_rows, rollbacks, wall_ns / 1000, cpu_ns / 1000, first_ms, last_ms, syncs_in,
		sync_in_ns / 1000, syncs_out, sync_out_ns / 1000);
	if (out != stderr) fclose(out);
	const char *batches_path = getenv("INGEST_PROBE_BATCHES");
	if (batches_path) {
		FILE *f = fopen(batches_path, "w");
		if (f) {
			for (size_t i = 0; i < batch_count; i++)
				fprintf(f, "%lld %lld\n", batches[i].rows, batches[i].start_ns / 1000);
			fclose(f);
		}
	}
}
