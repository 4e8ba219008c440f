/*
 * drain_c.c: the plain C baseline of the drain benchmark (libmosquitto + libsqlite3).
 *
 * What a competent C programmer writes for "send the outbox": select undelivered rows
 * (`--batch` at a time, by id) from
 *     outbox(id INTEGER PRIMARY KEY, record TEXT NOT NULL, delivered INTEGER NOT NULL)
 * join them into the same batch envelope the agent sends
 *     {"v":1,"dev":D,"store":S,"seq":N,"class":"readings","records":[...]}
 * publish it at QoS 1 (MQTT v5) on gridedge/v1/<dev>/up/readings with at most
 * `--window` unacknowledged, and mark its rows delivered when the PUBACK arrives.
 * WAL, synchronous=NORMAL, autocommit: one small transaction per PUBACK. One thread,
 * the libmosquitto loop; no application ack (the broker's PUBACK is the delivery).
 *
 * Prints one line on stdout when every row is delivered:
 *   done start_ms=S done_ms=T records=R batches=B rss_hwm=BYTES cpu_ms=C written=BYTES
 *
 * usage: drain_c --db FILE --port P [--host H] [--batch 100] [--window 16] [--device BENCH-C]
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "bench_util.h"

static const char *prog = "drain_c";

struct slot {
	int mid;
	sqlite3_int64 first_id, last_id;
	int records;
	bool used;
};

struct state {
	sqlite3 *db;
	sqlite3_stmt *select;
	sqlite3_stmt *mark;
	const char *device;
	char topic[128];
	int batch;
	int window;
	struct slot *slots;
	int in_flight;
	sqlite3_int64 cursor; /* highest id published */
	long long seq;
	long long delivered;
	long long batches;
	bool exhausted;
	bool done;
	char *payload;
	size_t payload_cap;
};

static void db_check(struct state *s, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		bench_fatal(prog, "%s: %s", what, sqlite3_errmsg(s->db));
}

static void append(struct state *s, size_t *len, const char *text, size_t n)
{
	if (*len + n + 1 > s->payload_cap) {
		while (*len + n + 1 > s->payload_cap) s->payload_cap *= 2;
		s->payload = realloc(s->payload, s->payload_cap);
		if (!s->payload) bench_fatal(prog, "out of memory");
	}
	memcpy(s->payload + *len, text, n);
	*len += n;
}

/* Publishes the next batch of undelivered rows; false when there are none. */
static bool publish_next(struct mosquitto *mosq, struct state *s)
{
	sqlite3_reset(s->select);
	sqlite3_bind_int64(s->select, 1, s->cursor);
	sqlite3_bind_int(s->select, 2, s->batch);
	size_t len = 0;
	char head[160];
	int n = snprintf(
		head, sizeof head,
		"{\"v\":1,\"dev\":\"%s\",\"store\":\"00000000000bc001\",\"seq\":%lld,\"class\":\"readings\",\"records\":[",
		s->device, s->seq + 1);
	append(s, &len, head, (size_t)n);
	int records = 0;
	sqlite3_int64 first = 0, last = 0;
	int rc;
	while ((rc = sqlite3_step(s->select)) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(s->select, 0);
		const char *record = (const char *)sqlite3_column_text(s->select, 1);
		int record_len = sqlite3_column_bytes(s->select, 1);
		if (records == 0) first = id;
		else append(s, &len, ",", 1);
		append(s, &len, record, (size_t)record_len);
		last = id;
		records++;
	}
	db_check(s, rc, "selecting undelivered rows");
	if (records == 0) return false;
	append(s, &len, "]}", 2);

	struct slot *slot = NULL;
	for (int i = 0; i < s->window; i++) {
		if (!s->slots[i].used) {
			slot = &s->slots[i];
			break;
		}
	}
	if (!slot) bench_fatal(prog, "no free window slot (in flight %d)", s->in_flight);
	int mid = 0;
	rc = mosquitto_publish(mosq, &mid, s->topic, (int)len, s->payload, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) bench_fatal(prog, "publish: %s", mosquitto_strerror(rc));
	*slot = (struct slot){.mid = mid, .first_id = first, .last_id = last, .records = records, .used = true};
	s->in_flight++;
	s->cursor = last;
	s->seq++;
	s->batches++;
	return true;
}

static void fill_window(struct mosquitto *mosq, struct state *s)
{
	while (!s->exhausted && s->in_flight < s->window) {
		if (!publish_next(mosq, s)) s->exhausted = true;
	}
	if (s->exhausted && s->in_flight == 0) s->done = true;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	if (rc != 0) bench_fatal(prog, "broker refused the connection: %s", mosquitto_connack_string(rc));
	fill_window(mosq, obj);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props)
{
	(void)props;
	struct state *s = obj;
	if (reason >= 0x80) bench_fatal(prog, "broker refused message %d with reason code %d", mid, reason);
	for (int i = 0; i < s->window; i++) {
		struct slot *slot = &s->slots[i];
		if (!slot->used || slot->mid != mid) continue;
		sqlite3_reset(s->mark);
		sqlite3_bind_int64(s->mark, 1, slot->first_id);
		sqlite3_bind_int64(s->mark, 2, slot->last_id);
		db_check(s, sqlite3_step(s->mark), "marking rows delivered");
		s->delivered += slot->records;
		slot->used = false;
		s->in_flight--;
		break;
	}
	fill_window(mosq, s);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)mosq;
	struct state *s = obj;
	if (!s->done) bench_fatal(prog, "disconnected before the end (rc %d)", rc);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = NULL;
	int port = 0;
	struct state s = {.device = "BENCH-C", .batch = 100, .window = 16};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
		else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) path = argv[++i];
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) s.batch = atoi(argv[++i]);
		else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) s.window = atoi(argv[++i]);
		else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) s.device = argv[++i];
		else bench_fatal(prog, "usage: drain_c --db FILE --port P [--host H] [--batch N] [--window N] [--device D]");
	}
	if (!path || port <= 0 || s.batch < 1 || s.window < 1) bench_fatal(prog, "--db and --port are required");
	signal(SIGPIPE, SIG_IGN);
	long long start_ms = bench_now_ms();

	if (sqlite3_open_v2(path, &s.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		bench_fatal(prog, "open %s: %s", path, sqlite3_errmsg(s.db));
	db_check(&s, sqlite3_exec(s.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL), "pragmas");
	db_check(
		&s,
		sqlite3_prepare_v2(
			s.db, "SELECT id, record FROM outbox WHERE delivered = 0 AND id > ?1 ORDER BY id LIMIT ?2", -1,
			&s.select, NULL),
		"prepare select");
	db_check(
		&s, sqlite3_prepare_v2(s.db, "UPDATE outbox SET delivered = 1 WHERE id BETWEEN ?1 AND ?2", -1, &s.mark, NULL),
		"prepare update");
	snprintf(s.topic, sizeof s.topic, "gridedge/v1/%s/up/readings", s.device);
	s.slots = calloc((size_t)s.window, sizeof *s.slots);
	s.payload_cap = 65536;
	s.payload = malloc(s.payload_cap);
	if (!s.slots || !s.payload) bench_fatal(prog, "out of memory");

	mosquitto_lib_init();
	struct mosquitto *mosq = mosquitto_new(s.device, true, &s);
	if (!mosq) bench_fatal(prog, "mosquitto_new failed");
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_max_inflight_messages_set(mosq, (unsigned)s.window);
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	mosquitto_disconnect_callback_set(mosq, on_disconnect);
	int rc = mosquitto_connect(mosq, host, port, 60);
	if (rc != MOSQ_ERR_SUCCESS) bench_fatal(prog, "connect %s:%d: %s", host, port, mosquitto_strerror(rc));
	while (!s.done) {
		rc = mosquitto_loop(mosq, 1000, 1);
		if (rc != MOSQ_ERR_SUCCESS) bench_fatal(prog, "loop: %s", mosquitto_strerror(rc));
	}
	long long done_ms = bench_now_ms();
	printf(
		"done start_ms=%lld done_ms=%lld records=%lld batches=%lld rss_hwm=%lld cpu_ms=%lld written=%lld\n",
		start_ms, done_ms, s.delivered, s.batches, bench_peak_rss_bytes(), bench_cpu_ms(), bench_written_bytes());
	fflush(stdout);
	mosquitto_disconnect(mosq);
	mosquitto_loop(mosq, 100, 1);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	sqlite3_finalize(s.select);
	sqlite3_finalize(s.mark);
	sqlite3_close(s.db);
	return 0;
}
