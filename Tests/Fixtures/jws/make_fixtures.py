#!/usr/bin/env python3
"""Writes the signed-command fixtures of this folder (tokens/*.jws and expectations.txt)
with Python's `cryptography`, an implementation independent of GridEdge's.

Every token is signed with the RFC 8037 Appendix A example key under kid "rfc8037"
unless its name says otherwise. The tests verify each one for device "TA-1" at
now = 1767225660 (2026-01-01T00:01:00Z) with last accepted counter 6 and a clock skew
of 300 s, and expect the code listed in expectations.txt ("accept" = verified).

Run it again only to add cases: Ed25519 is deterministic, so unchanged cases come
out byte-identical.
"""
import base64
import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
RFC_SEED = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
OTHER_SEED = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"  # bytes 1...32, not trusted
NOW = 1767225660
IAT = 1767225600
EXP = IAT + 3600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


RFC_KEY = Ed25519PrivateKey.from_private_bytes(unb64(RFC_SEED))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(unb64(OTHER_SEED))
RFC_PUBLIC = RFC_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
OTHER_PUBLIC = OTHER_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

BODY = '{"meter":"000000000001","purchase":3,"fen":10000}'


def claims(**changes) -> str:
    """The claims JSON text; a change of None removes the member, a str is raw JSON."""
    members = {
        "dev": '"TA-1"',
        "ctr": "7",
        "iat": str(IAT),
        "exp": str(EXP),
        "typ": '"topup"',
        "body": BODY,
    }
    for name, value in changes.items():
        if value is None:
            members.pop(name)
        else:
            members[name] = value
    return "{" + ",".join(f'"{name}":{value}' for name, value in members.items()) + "}"


def token(header: str, payload, key=RFC_KEY, signature=None) -> str:
    """header: raw JSON text; payload: str or bytes; signature: override bytes or None."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    signing_input = b64(header.encode("utf-8")) + "." + b64(payload)
    if signature is None:
        signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64(signature)


ED = '{"alg":"Ed25519","kid":"rfc8037"}'

CASES = []  # (name, expected code, token text)


def case(name, code, text):
    CASES.append((name, code, text))


# Accepted.
case("ok-ed25519", "accept", token(ED, claims()))
case("ok-eddsa", "accept", token('{"alg":"EdDSA","kid":"rfc8037"}', claims()))
case("ok-ctr-max", "accept", token(ED, claims(ctr="18446744073709551615")))
case(
    "ok-extra-members",
    "accept",
    token(
        '{"typ":"JWT","alg":"Ed25519","kid":"rfc8037","cty":"json"}',
        claims(jti='"c-42"', iss='"hq"'),
    ),
)
case("ok-whitespace-in-json", "accept", token('{ "alg" : "Ed25519" ,\n "kid":"rfc8037" }', " " + claims() + "\n"))

# The algorithm.
unsigned_none = b64(b'{"alg":"none","kid":"rfc8037"}') + "." + b64(claims().encode()) + "."
case("alg-none-unsigned", "unsupported-algorithm", unsigned_none)
case("alg-none-signed", "unsupported-algorithm", token('{"alg":"none","kid":"rfc8037"}', claims()))
case("alg-missing", "malformed", token('{"kid":"rfc8037"}', claims()))
case("alg-not-string", "malformed", token('{"alg":["Ed25519"],"kid":"rfc8037"}', claims()))
case("alg-lowercase", "unsupported-algorithm", token('{"alg":"ed25519","kid":"rfc8037"}', claims()))
case("alg-es256", "unsupported-algorithm", token('{"alg":"ES256","kid":"rfc8037"}', claims()))
case("alg-ed448", "unsupported-algorithm", token('{"alg":"Ed448","kid":"rfc8037"}', claims()))
# The classic confusion: HS256 keyed with the verifier's public key (raw bytes, or its text).
for suffix, secret in (("raw", RFC_PUBLIC), ("text", b64(RFC_PUBLIC).encode())):
    header = '{"alg":"HS256","kid":"rfc8037"}'
    signing_input = b64(header.encode()) + "." + b64(claims().encode())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    case(f"alg-hs256-public-key-{suffix}-secret", "unsupported-algorithm", signing_input + "." + b64(mac))

# The header.
case("header-duplicate-alg", "malformed", token('{"alg":"none","alg":"Ed25519","kid":"rfc8037"}', claims()))
case("header-escaped-duplicate-alg", "malformed", token('{"alg":"Ed25519","\\u0061lg":"none","kid":"rfc8037"}', claims()))
case("header-crit", "malformed", token('{"alg":"Ed25519","kid":"rfc8037","crit":["exp"],"exp":1}', claims()))
case("header-b64-false", "malformed", token('{"alg":"Ed25519","kid":"rfc8037","b64":false}', claims()))
case("header-array", "malformed", token('["alg","Ed25519"]', claims()))
case("header-not-json", "malformed", token("{alg:Ed25519}", claims()))
case("header-nul", "malformed", b64(ED.encode() + b"\x00") + "." + token(ED, claims()).split(".", 1)[1])
# An embedded jwk naming the attacker's key is never used.
attacker_jwk = '{"kty":"OKP","crv":"Ed25519","x":"' + b64(OTHER_PUBLIC) + '"}'
case(
    "header-jwk-attacker-key",
    "bad-signature",
    token('{"alg":"Ed25519","kid":"rfc8037","jwk":' + attacker_jwk + "}", claims(), key=OTHER_KEY),
)

# The key id.
case("kid-missing", "malformed", token('{"alg":"Ed25519"}', claims()))
case("kid-unknown", "unknown-key", token('{"alg":"Ed25519","kid":"hq-retired"}', claims()))
case("kid-not-string", "malformed", token('{"alg":"Ed25519","kid":8037}', claims()))

# The signature.
case("signature-other-key", "bad-signature", token(ED, claims(), key=OTHER_KEY))
good = token(ED, claims())
case("signature-63-bytes", "malformed", good.rsplit(".", 1)[0] + "." + b64(unb64(good.rsplit(".", 1)[1])[:63]))
case("signature-padded", "malformed", good + "==")
# A signature whose base64url has '-' or '_', written in standard base64 ('+', '/').
for n in range(100):
    urlsafe = token(ED, claims(jti=f'"{n}"'))
    standard = urlsafe.rsplit(".", 1)[1].replace("-", "+").replace("_", "/")
    if standard != urlsafe.rsplit(".", 1)[1]:
        break
case("signature-standard-base64", "malformed", urlsafe.rsplit(".", 1)[0] + "." + standard)
case("signature-zero", "bad-signature", token(ED, claims(), signature=bytes(64)))

# The structure.
header_part, payload_part, signature_part = good.split(".")
case("two-parts", "malformed", header_part + "." + payload_part)
case("four-parts", "malformed", good + "." + signature_part)
case("empty-header", "malformed", "." + payload_part + "." + signature_part)
case("empty-payload-detached", "malformed", token(ED, b""))
padded_input = b64(ED.encode()) + "." + base64.urlsafe_b64encode(claims().encode()).decode()
assert padded_input.endswith("="), "the claims' base64 needs padding for this case"
case("payload-padded", "malformed", padded_input + "." + b64(RFC_KEY.sign(padded_input.encode())))

# The claims.
case("claims-not-json", "malformed", token(ED, "dev=TA-1&ctr=7"))
case("claims-array", "malformed", token(ED, "[" + claims() + "]"))
case("claims-duplicate-ctr", "malformed", token(ED, claims()[:-1] + ',"ctr":8}'))
case("claims-nested-duplicate", "malformed", token(ED, claims(body='{"fen":1,"fen":100000}')))
case("claims-nul", "malformed", token(ED, claims().encode() + b"\x00{}"))
case("claims-invalid-utf8", "malformed", token(ED, claims().replace("topup", "top\xffup").encode("latin-1")))
case("ctr-too-large", "malformed", token(ED, claims(ctr="18446744073709551616")))
case("ctr-far-too-large", "malformed", token(ED, claims(ctr="123456789012345678901234567890")))
case("ctr-negative", "malformed", token(ED, claims(ctr="-7")))
case("ctr-real", "malformed", token(ED, claims(ctr="7.0")))
case("ctr-exponent", "malformed", token(ED, claims(ctr="7e0")))
case("ctr-string", "malformed", token(ED, claims(ctr='"7"')))
case("ctr-missing", "malformed", token(ED, claims(ctr=None)))
case("ctr-replayed", "replayed", token(ED, claims(ctr="6")))
case("ctr-zero", "replayed", token(ED, claims(ctr="0")))
case("dev-other", "wrong-device", token(ED, claims(dev='"TA-2"')))
case("dev-case", "wrong-device", token(ED, claims(dev='"ta-1"')))
case("dev-missing", "malformed", token(ED, claims(dev=None)))
case("iat-future", "not-yet-valid", token(ED, claims(iat=str(NOW + 301), exp=str(NOW + 4000))))
case("iat-within-skew", "accept", token(ED, claims(iat=str(NOW + 300), exp=str(NOW + 4000))))
case("iat-real", "malformed", token(ED, claims(iat=str(IAT) + ".5")))
case("exp-past", "expired", token(ED, claims(iat=str(NOW - 7200), exp=str(NOW - 3600))))
case("exp-now", "expired", token(ED, claims(iat=str(NOW - 60), exp=str(NOW))))
case("exp-before-iat", "malformed", token(ED, claims(exp=str(IAT - 1))))
case("exp-missing", "malformed", token(ED, claims(exp=None)))
case("typ-unknown", "unknown-type", token(ED, claims(typ='"reboot"')))
case("typ-missing", "malformed", token(ED, claims(typ=None)))
case("body-array", "malformed", token(ED, claims(body="[1,2]")))
case("body-missing", "malformed", token(ED, claims(body=None)))


def main():
    folder = os.path.join(HERE, "tokens")
    os.makedirs(folder, exist_ok=True)
    names = set()
    lines = [
        "# <token file in tokens/> <expected code>; written by make_fixtures.py.",
        "# Verified for device TA-1 at now 1767225660, last accepted counter 6, skew 300 s,",
        "# trusting only the RFC 8037 Appendix A key as kid rfc8037.",
    ]
    for name, code, text in CASES:
        assert name not in names, name
        names.add(name)
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        with open(os.path.join(folder, name + ".jws"), "wb") as out:
            out.write(data)
        lines.append(f"{name}.jws {code}")
    with open(os.path.join(HERE, "expectations.txt"), "w") as out:
        out.write("\n".join(lines) + "\n")
    with open(os.path.join(HERE, "rfc8037-a4.jws"), "w") as out:
        out.write(token('{"alg":"EdDSA"}', "Example of Ed25519 signing"))
    print(f"{len(CASES)} cases written")


if __name__ == "__main__":
    main()
