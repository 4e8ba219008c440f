// OpenSSL libcrypto for Swift: Ed25519 and SHA-256 (EVP interfaces).
#ifndef GRIDEDGE_CCRYPTO_SHIM_H
#define GRIDEDGE_CCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

#endif
