// libmosquitto for Swift (client library; no library thread is used).
#ifndef GRIDEDGE_CMOSQUITTO_SHIM_H
#define GRIDEDGE_CMOSQUITTO_SHIM_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

/// `errno` is a macro over a thread-local; Swift cannot read it directly.
/// Read it immediately after a libmosquitto call returned MOSQ_ERR_ERRNO.
static inline int cmosquitto_errno(void) { return errno; }

/// `strerror(3)` for the description of MOSQ_ERR_ERRNO errors. The returned
/// string is owned by libc; copy it before the next libc call.
static inline const char *cmosquitto_strerror(int value) { return strerror(value); }

/// Frees a string libmosquitto allocated for the caller
/// (`mosquitto_property_read_string`, `mosquitto_property_read_string_pair`).
static inline void cmosquitto_free(void *pointer) { free(pointer); }

#endif
