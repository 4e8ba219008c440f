/*
 * bench_util.h: what the drain benchmark's C programs share (clock, peak RSS,
 * CPU time, bytes written, fatal errors). Header-only; include once per program.
 */
#ifndef GRIDEDGE_BENCH_UTIL_H
#define GRIDEDGE_BENCH_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Wall-clock milliseconds: the script compares times taken by different processes. */
static inline long long bench_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* VmHWM of /proc/self/status (the peak resident set) in bytes, or -1. */
static inline long long bench_peak_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long long kib = -1;
	if (!f) return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kib = strtoll(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib < 0 ? -1 : kib * 1024;
}

/* Bytes this process caused to be written to storage (/proc/self/io write_bytes
 * minus cancelled_write_bytes), or -1. */
static inline long long bench_written_bytes(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[256];
	long long written = -1, cancelled = 0;
	if (!f) return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "write_bytes:", 12) == 0) written = strtoll(line + 12, NULL, 10);
		else if (strncmp(line, "cancelled_write_bytes:", 22) == 0) cancelled = strtoll(line + 22, NULL, 10);
	}
	fclose(f);
	return written < 0 ? -1 : written - cancelled;
}

/* CPU time (user + system) this process used so far, in milliseconds. */
static inline long long bench_cpu_ms(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
	return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Prints "<prog>: error: ..." to stderr and exits 1. */
static inline void bench_fatal(const char *prog, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: error: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#endif
