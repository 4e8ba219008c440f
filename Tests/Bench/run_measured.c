/*
 * run_measured.c: runs a command once, its stdout into a file, and reports its
 * wall time, CPU time and peak resident set. For the balance benchmark, which
 * times short processes (`gridedge balance`, `sqlite3`) that end before
 * /proc/PID/status could be read.
 *
 *   run_measured OUT -- COMMAND [ARGS...]
 *
 * Prints one line: `wall_us=N user_us=N sys_us=N maxrss_bytes=N status=N`.
 * maxrss is the child's ru_maxrss from wait4(2): the kernel's high-water mark of
 * its resident set, the figure /proc/PID/status shows as VmHWM. Exits 1 when the
 * command cannot be started or does not exit 0 (its status is still printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

static long long monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: run_measured OUT -- COMMAND [ARGS...]\n");
		return 2;
	}
	int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0) bench_fatal("run_measured", "open %s: %s", argv[1], strerror(errno));
	long long start = monotonic_us();
	pid_t pid = fork();
	if (pid < 0) bench_fatal("run_measured", "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(out, STDOUT_FILENO);
		close(out);
		execvp(argv[3], argv + 3);
		fprintf(stderr, "run_measured: exec %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	close(out);
	int status = 0;
	struct rusage usage;
	if (wait4(pid, &status, 0, &usage) < 0) bench_fatal("run_measured", "wait4: %s", strerror(errno));
	long long wall = monotonic_us() - start;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("wall_us=%lld user_us=%lld sys_us=%lld maxrss_bytes=%lld status=%d\n", wall,
	       (long long)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec,
	       (long long)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec,
	       (long long)usage.ru_maxrss * 1024, code);
	return code == 0 ? 0 : 1;
}
