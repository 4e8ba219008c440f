// The libc headers GridEdge uses. `Glibc` does not exist in Embedded Swift, so
// this module map is how every Sources target reaches libc.
#ifndef GRIDEDGE_CLIBC_SHIM_H
#define GRIDEDGE_CLIBC_SHIM_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <linux/serial.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/// `errno` is a macro over a thread-local; Swift cannot read it directly.
static inline int clibc_errno(void) { return errno; }
static inline void clibc_set_errno(int value) { errno = value; }

/// Makes stdout line buffered, so a trap in an optimised build leaves its trail.
static inline void clibc_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/// The standard streams (macros in glibc).
static inline FILE *clibc_stdout(void) { return stdout; }
static inline FILE *clibc_stderr(void) { return stderr; }

/// `open(2)` is variadic; Swift cannot call it.
static inline int clibc_open(const char *path, int flags, mode_t mode) {
  return open(path, flags, mode);
}

/// `fcntl(2)` is variadic.
static inline int clibc_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags); }
static inline int clibc_fcntl_getfl(int fd) { return fcntl(fd, F_GETFL); }

/// `sigemptyset`/`sigaddset` wrapped so that a set is built in one call.
static inline int clibc_signalfd_for_termination(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
  return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/// Ignore SIGPIPE (a broken socket must be an error code, not a death).
static inline void clibc_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/// Serial lines (MeterBus): `CRTSCTS` does not fit a C int, so Swift cannot import it.
static inline tcflag_t clibc_crtscts(void) { return CRTSCTS; }

/// Sets `VMIN`/`VTIME` (the `c_cc` array is a tuple in Swift).
static inline void clibc_termios_set_vmin_vtime(struct termios *t, cc_t vmin, cc_t vtime) {
  t->c_cc[VMIN] = vmin;
  t->c_cc[VTIME] = vtime;
}

/// Turns the kernel's RS-485 mode on (RTS high while sending) or off: `ioctl` is variadic.
static inline int clibc_serial_rs485(int fd, int enable) {
  struct serial_rs485 conf;
  memset(&conf, 0, sizeof conf);
  if (enable) conf.flags = SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND;
  return ioctl(fd, TIOCSRS485, &conf);
}

/// Pseudo-terminals (gridedge-sim's pty bus): declared here because the libc headers
/// hide them without _XOPEN_SOURCE/_GNU_SOURCE.
int posix_openpt(int flags);
int grantpt(int fd);
int unlockpt(int fd);
int ptsname_r(int fd, char *buf, size_t buflen);

/// Bytes waiting to be read on `fd` (`ioctl(FIONREAD)`), or -1.
static inline int clibc_bytes_readable(int fd) {
  int n = 0;
  return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

#endif
