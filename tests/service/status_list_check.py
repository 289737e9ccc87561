#!/usr/bin/env python3
"""A relying party's revocation check, written from draft-ietf-oauth-status-list (not from
tokensign's code), with PyJWT (Debian python3-jwt) and zlib.

Usage: status_list_check.py JWKS STATUS_LIST_TOKEN TOKENS
  JWKS               the issuer's JWK Set ({"keys": [...]})
  STATUS_LIST_TOKEN  a file holding the Status List Token (compact JWS)
  TOKENS             a file holding a JSON list of Referenced Tokens (compact JWS)

For each Referenced Token prints one line "<n> <STATUS>", STATUS one of VALID, INVALID,
SUSPENDED or 0xNN, after checking:
  - the Referenced Token's signature (key from the JWKS by kid; aud not checked here);
  - its "status" claim: {"status_list": {"idx": <int>, "uri": <string>}} (section 6.1);
  - the Status List Token: header typ "statuslist+jwt" (section 5.1), signature by the
    JWKS, "sub" equal to the Referenced Token's uri (section 5.1 / 8.3), exp not passed;
  - "status_list": {"bits": 1|2|4|8, "lst": base64url(ZLIB(bytes))} (section 4.1);
    the status of index idx is the bits at position idx * bits, least significant first
    (byte idx * bits // 8, shift (idx * bits) % 8).
Exits 1 (printing FAIL ...) when any check fails.
"""
import base64
import json
import sys
import zlib

import jwt

STATUS = {0: "VALID", 1: "INVALID", 2: "SUSPENDED"}


def key_for(jwks, token):
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    return jwt.PyJWK(jwk).key, jwk["alg"]


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    jwks = json.load(open(sys.argv[1]))
    status_list_token = open(sys.argv[2]).read().strip()
    tokens = json.load(open(sys.argv[3]))

    header = jwt.get_unverified_header(status_list_token)
    if header.get("typ") != "statuslist+jwt":
        print("FAIL status list typ %r" % header.get("typ"))
        return 1
    key, alg = key_for(jwks, status_list_token)
    slt = jwt.decode(status_list_token, key, algorithms=[alg],
                     options={"verify_aud": False, "require": ["sub", "iat"]})
    sl = slt["status_list"]
    bits = sl["bits"]
    if bits not in (1, 2, 4, 8):
        print("FAIL bits %r" % bits)
        return 1
    raw = zlib.decompress(b64url(sl["lst"]))

    for n, token in enumerate(tokens):
        key, alg = key_for(jwks, token)
        claims = jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False})
        ref = claims["status"]["status_list"]
        idx, uri = ref["idx"], ref["uri"]
        if not isinstance(idx, int) or idx < 0:
            print("FAIL token %d idx %r" % (n, idx))
            return 1
        if uri != slt["sub"]:
            print("FAIL token %d references %s, the list is %s" % (n, uri, slt["sub"]))
            return 1
        byte, shift = divmod(idx * bits, 8)
        if byte >= len(raw):
            print("FAIL token %d idx %d beyond the list" % (n, idx))
            return 1
        value = (raw[byte] >> shift) & ((1 << bits) - 1)
        print(n, STATUS.get(value, "0x%02x" % value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
