/*
 * ingest_c.c: the plain C baseline of the ingest benchmark (libsqlite3 only).
 *
 * Inserts the readings the agent stored in a benchmark run into a new database with
 * the agent's own tables, the way a competent C programmer writes "store a reading
 * and its outbox record in one transaction":
 *
 *   - the schema of `readings` (WITHOUT ROWID, key (ts, meter, di)) and
 *     `outbox_readings` (the readings class's outbox table, AUTOINCREMENT) is copied
 *     from the agent's database (sqlite_master), so both sides write the same tables;
 *   - WAL, synchronous=NORMAL, foreign_keys=ON, SQLITE_DBCONFIG_DEFENSIVE, as the
 *     agent's connection sets them;
 *   - the same two prepared statements as the agent's Readings.store and
 *     Outbox.enqueue (INSERT ... ON CONFLICT DO NOTHING, then the outbox row with
 *     json(?2)), the outbox row only when the reading was new;
 *   - the outbox record formatted here with snprintf from the reading's fields
 *     (meter number, identifier, timestamp, value, tariff registers, quality,
 *     read_at), the same text the agent writes (the script compares them after);
 *   - the agent's batching: BEGIN IMMEDIATE ... COMMIT around each group of readings,
 *     the group sizes read from --batches (lines "READINGS START_US", as
 *     ingest_probe.so recorded them in the agent), or --batch N;
 *   - with --pace, the agent's timing too: each transaction begins START_US after
 *     the first, as in the agent (which reads meters in between), so that the
 *     kernel's write-back and the WAL checkpoints meet both programs alike; the
 *     waiting is outside the transactions and the clock counts only them.
 *
 * The readings come from the agent's outbox (class 'readings', in id order: the
 * order the agent inserted them) and are loaded into memory before the clock starts.
 *
 * Prints one line on stdout at the end (in_txn_us: the time inside transactions):
 *   done rows=R txns=T in_txn_us=I elapsed_us=E cpu_ms=C start_ms=S done_ms=D rss_hwm=BYTES
 *
 * usage: ingest_c --from AGENT_DB --db NEW_DB (--batches FILE [--pace] | --batch N)
 */
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

#include "bench_util.h"

static const char *prog = "ingest_c";

#define MAX_TARIFFS 8

struct reading {
	long long ts, value, read_at, created_at;
	unsigned long long meter;
	unsigned di;
	int billing;
	int tariff_count; /* -1: total read alone (no tariffs) */
	long long tariffs[MAX_TARIFFS];
	const char *quality; /* one of the three literals below */
};

static sqlite3 *db;

static void check(int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		bench_fatal(prog, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "[1,2,3]" into `out`; returns the count, or -1 when `text` is NULL. */
static int parse_array(const char *text, long long *out)
{
	if (!text) return -1;
	int n = 0;
	const char *p = text;
	while (*p && *p != ']') {
		if (*p == '[' || *p == ',') {
			p++;
			continue;
		}
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end == p) bench_fatal(prog, "bad tariffs '%s'", text);
		if (n == MAX_TARIFFS) bench_fatal(prog, "more than %d tariffs in '%s'", MAX_TARIFFS, text);
		out[n++] = v;
		p = end;
	}
	return n;
}

static const char *quality_literal(const char *q)
{
	static const char *names[] = {"measured", "backfilled", "clock-suspect"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (q && strcmp(q, names[i]) == 0) return names[i];
	bench_fatal(prog, "unknown quality '%s'", q ? q : "(null)");
	return NULL;
}

/* The readings the agent stored, in the order it stored them. */
static struct reading *load(const char *path, size_t *count, char ***schema, int *schema_count)
{
	sqlite3 *src;
	check(sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL), "open the agent's database");
	sqlite3_stmt *st;
	const char *schema_sql =
		"SELECT sql FROM sqlite_master WHERE tbl_name IN ('readings', 'outbox_readings') AND sql IS NOT NULL "
		"ORDER BY type = 'table' DESC, rowid";
	if (sqlite3_prepare_v2(src, schema_sql, -1, &st, NULL) != SQLITE_OK)
		bench_fatal(prog, "reading the schema: %s", sqlite3_errmsg(src));
	*schema = calloc(16, sizeof **schema);
	*schema_count = 0;
	while (sqlite3_step(st) == SQLITE_ROW && *schema_count < 16)
		(*schema)[(*schema_count)++] = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (*schema_count < 2) bench_fatal(prog, "%s has no readings/outbox_readings tables", path);

	const char *rows_sql =
		"SELECT json_extract(record, '$.ts'), json_extract(record, '$.meter'), json_extract(record, '$.di'), "
		"json_extract(record, '$.v'), json_extract(record, '$.tariffs'), json_extract(record, '$.q'), "
		"json_extract(record, '$.read_at'), billing, created_at "
		"FROM outbox WHERE class = 'readings' ORDER BY id";
	if (sqlite3_prepare_v2(src, rows_sql, -1, &st, NULL) != SQLITE_OK)
		bench_fatal(prog, "reading the outbox: %s", sqlite3_errmsg(src));
	size_t cap = 1 << 16, n = 0;
	struct reading *r = malloc(cap * sizeof *r);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap *= 2;
			r = realloc(r, cap * sizeof *r);
			if (!r) bench_fatal(prog, "out of memory");
		}
		struct reading *x = &r[n++];
		x->ts = sqlite3_column_int64(st, 0);
		x->meter = strtoull((const char *)sqlite3_column_text(st, 1), NULL, 10);
		x->di = (unsigned)strtoul((const char *)sqlite3_column_text(st, 2), NULL, 16);
		x->value = sqlite3_column_int64(st, 3);
		x->tariff_count = parse_array((const char *)sqlite3_column_text(st, 4), x->tariffs);
		x->quality = quality_literal((const char *)sqlite3_column_text(st, 5));
		x->read_at = sqlite3_column_int64(st, 6);
		x->billing = sqlite3_column_int(st, 7);
		x->created_at = sqlite3_column_int64(st, 8);
	}
	if (rc != SQLITE_DONE) bench_fatal(prog, "reading the outbox: %s", sqlite3_errmsg(src));
	sqlite3_finalize(st);
	sqlite3_close(src);
	*count = n;
	return r;
}

struct batch {
	long long rows, start_us;
};

/* Transactions: from FILE ("READINGS START_US" per line) or `batch` readings each
 * (start 0), covering `rows`. */
static struct batch *batches_for(const char *file, long long batch, size_t rows, size_t *count)
{
	size_t cap = 1024, n = 0, sum = 0;
	struct batch *out = malloc(cap * sizeof *out);
	if (file) {
		FILE *f = fopen(file, "r");
		if (!f) bench_fatal(prog, "cannot open %s", file);
		long long v, start;
		while (fscanf(f, "%lld %lld", &v, &start) == 2) {
			if (v <= 0 || start < 0) bench_fatal(prog, "%s: bad line '%lld %lld'", file, v, start);
			if (n == cap) out = realloc(out, (cap *= 2) * sizeof *out);
			out[n++] = (struct batch){v, start};
			sum += (size_t)v;
		}
		fclose(f);
		if (sum != rows) bench_fatal(prog, "%s: batches add up to %zu readings, the agent stored %zu", file, sum, rows);
	} else {
		if (batch <= 0) bench_fatal(prog, "--batch must be positive");
		for (size_t done = 0; done < rows; done += (size_t)batch) {
			if (n == cap) out = realloc(out, (cap *= 2) * sizeof *out);
			out[n++] = (struct batch){(long long)(rows - done < (size_t)batch ? rows - done : (size_t)batch), 0};
		}
	}
	*count = n;
	return out;
}

/* Sleeps until `us` on the monotonic clock. */
static void sleep_until_us(long long us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {}
}

/* "[1,2,3]" of the tariff registers into buf. */
static int format_array(char *buf, size_t size, const struct reading *x)
{
	int n = snprintf(buf, size, "[");
	for (int i = 0; i < x->tariff_count; i++) n += snprintf(buf + n, size - n, i ? ",%lld" : "%lld", x->tariffs[i]);
	return n + snprintf(buf + n, size - n, "]");
}

int main(int argc, char **argv)
{
	const char *from = NULL, *path = NULL, *batches_file = NULL;
	long long batch = 0;
	int pace = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pace") == 0) {
			pace = 1;
			continue;
		}
		if (i + 1 == argc) bench_fatal(prog, "%s needs a value", argv[i]);
		if (strcmp(argv[i], "--from") == 0) from = argv[++i];
		else if (strcmp(argv[i], "--db") == 0) path = argv[++i];
		else if (strcmp(argv[i], "--batches") == 0) batches_file = argv[++i];
		else if (strcmp(argv[i], "--batch") == 0) batch = atoll(argv[++i]);
		else bench_fatal(prog, "unknown option %s", argv[i]);
	}
	if (!from || !path || (!batches_file && batch <= 0))
		bench_fatal(prog, "usage: ingest_c --from AGENT_DB --db NEW_DB (--batches FILE [--pace] | --batch N)");

	size_t rows;
	char **schema;
	int schema_count;
	struct reading *r = load(from, &rows, &schema, &schema_count);
	if (rows == 0) bench_fatal(prog, "%s holds no readings in its outbox", from);
	size_t batch_count;
	struct batch *batches = batches_for(batches_file, batch, rows, &batch_count);

	char wal[4096], shm[4096];
	snprintf(wal, sizeof wal, "%s-wal", path);
	snprintf(shm, sizeof shm, "%s-shm", path);
	unlink(path);
	unlink(wal);
	unlink(shm);
	check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
		      NULL),
		"open");
	check(sqlite3_busy_timeout(db, 5000), "busy_timeout");
	check(sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL), "defensive");
	check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL", NULL, NULL, NULL),
		"pragmas");
	for (int i = 0; i < schema_count; i++) check(sqlite3_exec(db, schema[i], NULL, NULL, NULL), schema[i]);

	sqlite3_stmt *insert, *enqueue;
	check(sqlite3_prepare_v2(db,
		      "INSERT INTO readings (ts, meter, di, value, tariffs, quality, read_at)\n"
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
		      -1, &insert, NULL),
		"prepare insert");
	check(sqlite3_prepare_v2(db, "INSERT INTO outbox_readings (billing, record, created_at) VALUES (?1, json(?2), ?3)", -1,
		      &enqueue, NULL),
		"prepare enqueue");

	long long start_ms = bench_now_ms(), cpu0 = bench_cpu_ms(), t0 = mono_us(), in_txn = 0;
	size_t next = 0, stored = 0;
	char meter[16], di[12], tariffs[256], record[512];
	for (size_t b = 0; b < batch_count; b++) {
		if (pace) sleep_until_us(t0 + batches[b].start_us);
		long long began = mono_us();
		check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "BEGIN");
		for (long long k = 0; k < batches[b].rows; k++, next++) {
			const struct reading *x = &r[next];
			snprintf(meter, sizeof meter, "%012llu", x->meter);
			snprintf(di, sizeof di, "%08X", x->di);
			sqlite3_bind_int64(insert, 1, x->ts);
			sqlite3_bind_text(insert, 2, meter, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(insert, 3, di, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(insert, 4, x->value);
			if (x->tariff_count >= 0) {
				format_array(tariffs, sizeof tariffs, x);
				sqlite3_bind_text(insert, 5, tariffs, -1, SQLITE_TRANSIENT);
			} else {
				sqlite3_bind_null(insert, 5);
			}
			sqlite3_bind_text(insert, 6, x->quality, -1, SQLITE_STATIC);
			sqlite3_bind_int64(insert, 7, x->read_at);
			check(sqlite3_step(insert), "insert reading");
			sqlite3_reset(insert);
			if (sqlite3_changes(db) == 0) continue;
			int n = snprintf(record, sizeof record, "{\"meter\":\"%s\",\"di\":\"%s\",\"ts\":%lld,\"v\":%lld", meter, di,
				x->ts, x->value);
			if (x->tariff_count >= 0) {
				n += snprintf(record + n, sizeof record - n, ",\"tariffs\":");
				n += format_array(record + n, sizeof record - n, x);
			}
			snprintf(record + n, sizeof record - n, ",\"q\":\"%s\",\"read_at\":%lld}", x->quality, x->read_at);
			sqlite3_bind_int(enqueue, 1, x->billing);
			sqlite3_bind_text(enqueue, 2, record, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(enqueue, 3, x->created_at);
			check(sqlite3_step(enqueue), "enqueue record");
			sqlite3_reset(enqueue);
			stored++;
		}
		check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "COMMIT");
		in_txn += mono_us() - began;
	}
	long long elapsed = mono_us() - t0, done_ms = bench_now_ms(), cpu = bench_cpu_ms() - cpu0;
	if (stored != rows) bench_fatal(prog, "stored %zu of %zu readings (duplicates in the source?)", stored, rows);
	sqlite3_finalize(insert);
	sqlite3_finalize(enqueue);
	check(sqlite3_close(db), "close");
	printf("done rows=%zu txns=%zu in_txn_us=%lld elapsed_us=%lld cpu_ms=%lld start_ms=%lld done_ms=%lld rss_hwm=%lld\n",
		stored, batch_count, in_txn, elapsed, cpu, start_ms, done_ms, bench_peak_rss_bytes());
	return 0;
}
