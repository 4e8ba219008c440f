/*
 * ack_responder.c: the smallest HQ stand-in for the drain benchmark.
 *
 * Subscribes (QoS 1, MQTT v5) to every device's uplink, gridedge/v1/+/up/+, and for
 * each batch reads "store" and "seq" from its JSON header and at once publishes the
 * application ack {"store":S,"seq":[[seq,seq]]} (QoS 1) on gridedge/v1/<dev>/down/ack,
 * as gridedge-hq would after storing it. With --no-ack it only counts (an observer
 * beside the real gridedge-hq).
 *
 * Records are counted once per seq (a resent batch counts as a duplicate, not
 * again); a record is a '{' inside the batch's "records" array, which holds for
 * the flat reading records the benchmark sends.
 *
 * Prints on stdout, one line each:
 *   ready                                       subscribed; start the publisher
 *   all first_ms=F all_ms=A records=R batches=B duplicates=D
 *                                               when R >= --expect (wall-clock ms
 *                                               of the first batch and of the one
 *                                               that completed the count)
 * and runs on, acking resends, until SIGTERM.
 *
 * usage: ack_responder --port P --expect N [--host H] [--no-ack]
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench_util.h"

static const char *prog = "ack_responder";

struct state {
	long long expect;
	bool ack;
	long long first_ms;
	long long records;
	long long batches;
	long long duplicates;
	bool reported;
	unsigned char *seen; /* one byte per seq */
	size_t seen_len;
};

/* Marks seq as seen; returns true when it was not seen before. */
static bool mark_seen(struct state *s, long long seq)
{
	if (seq < 0) return true;
	if ((size_t)seq >= s->seen_len) {
		size_t len = s->seen_len ? s->seen_len : 16384;
		while (len <= (size_t)seq) len *= 2;
		unsigned char *grown = realloc(s->seen, len);
		if (!grown) bench_fatal(prog, "out of memory for %zu seqs", len);
		memset(grown + s->seen_len, 0, len - s->seen_len);
		s->seen = grown;
		s->seen_len = len;
	}
	if (s->seen[seq]) return false;
	s->seen[seq] = 1;
	return true;
}

/* Copies the value of the JSON string member `"name":"..."` from head into out. */
static bool string_member(const char *head, const char *name, char *out, size_t cap)
{
	char key[32];
	snprintf(key, sizeof key, "\"%s\":\"", name);
	const char *p = strstr(head, key);
	if (!p) return false;
	p += strlen(key);
	const char *end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= cap) return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted)
{
	(void)mosq;
	(void)obj;
	(void)mid;
	if (count < 1 || granted[0] > 1) bench_fatal(prog, "subscription refused (granted %d)", count ? granted[0] : -1);
	printf("ready\n");
	fflush(stdout);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	struct state *s = obj;
	long long now = bench_now_ms();
	if (s->first_ms == 0) s->first_ms = now;

	/* gridedge/v1/<dev>/up/<class> */
	char dev[64];
	const char *t = msg->topic + strlen("gridedge/v1/");
	const char *slash = strchr(t, '/');
	if (strncmp(msg->topic, "gridedge/v1/", 12) != 0 || !slash || (size_t)(slash - t) >= sizeof dev) {
		fprintf(stderr, "%s: ignored message on %s\n", prog, msg->topic);
		return;
	}
	memcpy(dev, t, (size_t)(slash - t));
	dev[slash - t] = '\0';

	/* The header members come before "records"; 512 bytes hold them. */
	const char *payload = msg->payload;
	size_t len = (size_t)msg->payloadlen;
	char head[513];
	size_t head_len = len < 512 ? len : 512;
	memcpy(head, payload, head_len);
	head[head_len] = '\0';
	char store[40];
	const char *seq_at = strstr(head, "\"seq\":");
	const char *records_at = strstr(head, "\"records\":[");
	if (!string_member(head, "store", store, sizeof store) || !seq_at || !records_at) {
		fprintf(stderr, "%s: batch without store, seq or records on %s\n", prog, msg->topic);
		return;
	}
	long long seq = strtoll(seq_at + 6, NULL, 10);

	if (s->ack) {
		char topic[128], ack[128];
		snprintf(topic, sizeof topic, "gridedge/v1/%s/down/ack", dev);
		int n = snprintf(ack, sizeof ack, "{\"store\":\"%s\",\"seq\":[[%lld,%lld]]}", store, seq, seq);
		int rc = mosquitto_publish(mosq, NULL, topic, n, ack, 1, false);
		if (rc != MOSQ_ERR_SUCCESS) bench_fatal(prog, "publishing ack: %s", mosquitto_strerror(rc));
	}

	if (!mark_seen(s, seq)) {
		s->duplicates++;
		return;
	}
	long long count = 0;
	for (size_t i = (size_t)(records_at - head) + 11; i < len; i++) {
		if (payload[i] == '{') count++;
	}
	s->records += count;
	s->batches++;
	if (!s->reported && s->records >= s->expect) {
		s->reported = true;
		printf(
			"all first_ms=%lld all_ms=%lld records=%lld batches=%lld duplicates=%lld\n", s->first_ms, now,
			s->records, s->batches, s->duplicates);
		fflush(stdout);
	}
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)obj;
	if (rc != 0) bench_fatal(prog, "broker refused the connection: %s", mosquitto_connack_string(rc));
	int sub = mosquitto_subscribe(mosq, NULL, "gridedge/v1/+/up/+", 1);
	if (sub != MOSQ_ERR_SUCCESS) bench_fatal(prog, "subscribe: %s", mosquitto_strerror(sub));
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0;
	struct state s = {.ack = true};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
		else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) s.expect = atoll(argv[++i]);
		else if (strcmp(argv[i], "--no-ack") == 0) s.ack = false;
		else bench_fatal(prog, "usage: ack_responder --port P --expect N [--host H] [--no-ack]");
	}
	if (port <= 0 || s.expect <= 0) bench_fatal(prog, "--port and --expect are required");
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	struct mosquitto *mosq = mosquitto_new(s.ack ? "bench-ack-responder" : "bench-observer", true, &s);
	if (!mosq) bench_fatal(prog, "mosquitto_new failed");
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_max_inflight_messages_set(mosq, 0);
	/* An HQ answers each batch with a small ack: Nagle's algorithm would hold each one
	 * until the broker's delayed ACK of the previous (up to 40 ms). gridedge-hq's
	 * client sets TCP_NODELAY too. */
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_subscribe_callback_set(mosq, on_subscribe);
	mosquitto_message_callback_set(mosq, on_message);
	int rc = mosquitto_connect(mosq, host, port, 60);
	if (rc != MOSQ_ERR_SUCCESS) bench_fatal(prog, "connect %s:%d: %s", host, port, mosquitto_strerror(rc));
	rc = mosquitto_loop_forever(mosq, -1, 1);
	bench_fatal(prog, "loop ended: %s", mosquitto_strerror(rc));
	return 1;
}
