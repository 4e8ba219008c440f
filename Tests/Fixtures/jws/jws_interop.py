#!/usr/bin/env python3
"""Signs and verifies compact JWS with Ed25519 using the Python `cryptography` package,
as an independent implementation for GridEdge's interoperability tests.

usage:
  jws_interop.py sign SEED KID ALG PAYLOAD    print a compact JWS: header {"alg":ALG,"kid":KID},
                                             payload the UTF-8 text PAYLOAD, signed with the
                                             Ed25519 private key whose 32-byte seed is SEED
                                             (base64url); an empty KID leaves kid out
  jws_interop.py public SEED                 print the base64url public key of SEED
  jws_interop.py verify PUBLIC TOKEN         verify TOKEN with the Ed25519 public key PUBLIC
                                             (base64url); print the header and the payload

exit status: 0 ok, 1 the signature does not verify, 2 usage or malformed input,
3 the `cryptography` package is missing.
"""
import base64
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError as error:
    print(f"the Python package 'cryptography' is missing: {error}", file=sys.stderr)
    sys.exit(3)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if "=" in text:
        raise ValueError("padding in base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(seed: str, kid: str, alg: str, payload: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(b64url_decode(seed))
    header = {"alg": alg}
    if kid:
        header["kid"] = kid
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(payload.encode("utf-8"))
    )
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


def public(seed: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(b64url_decode(seed))
    return b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def verify(public_key: str, token: str) -> int:
    parts = token.split(".")
    if len(parts) != 3:
        print(f"expected 3 parts, found {len(parts)}", file=sys.stderr)
        return 2
    header = json.loads(b64url_decode(parts[0]))
    if header.get("alg") not in ("Ed25519", "EdDSA"):
        print(f"unsupported alg {header.get('alg')!r}", file=sys.stderr)
        return 2
    key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_key))
    try:
        key.verify(b64url_decode(parts[2]), (parts[0] + "." + parts[1]).encode("ascii"))
    except InvalidSignature:
        print("invalid signature", file=sys.stderr)
        return 1
    print(json.dumps(header, separators=(",", ":")))
    print(b64url_decode(parts[1]).decode("utf-8"))
    return 0


def main(argv: list) -> int:
    try:
        if len(argv) == 5 and argv[0] == "sign":
            print(sign(argv[1], argv[2], argv[3], argv[4]))
            return 0
        if len(argv) == 2 and argv[0] == "public":
            print(public(argv[1]))
            return 0
        if len(argv) == 3 and argv[0] == "verify":
            return verify(argv[1], argv[2])
    except ValueError as error:
        print(f"malformed input: {error}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
