// OpenSSL libcrypto for Swift: Ed25519 and SHA-256 (EVP interfaces).
#ifndef GRIDEDGE_CCRYPTO_SHIM_H
#define GRIDEDGE_CCRYPTO_SHIM_H

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/// `EVP_PKEY_ED25519` is a macro naming another macro (`NID_ED25519`).
static inline int ccrypto_pkey_ed25519(void) { return EVP_PKEY_ED25519; }

/// Takes the oldest error from libcrypto's thread-local error queue (usually the root
/// cause) as text into `buffer` ("" when the queue is empty), then empties the queue, so
/// that no stale error is left for the next caller on this thread (libmosquitto's TLS
/// code reads the same queue). Returns the error code, 0 when there was none.
static inline unsigned long ccrypto_take_error(char *buffer, size_t length) {
  unsigned long code = ERR_get_error();
  if (buffer != NULL && length > 0) {
    buffer[0] = '\0';
    if (code != 0) ERR_error_string_n(code, buffer, length);
  }
  ERR_clear_error();
  return code;
}

#endif
