#!/usr/bin/env python3
"""Independent verification of tokensign tokens with PyJWT (Debian python3-jwt 2.6).

Usage: pyjwt_verify.py DIR
DIR holds jwks.json ({"keys": [...]}) and tokens.json (a list of
{"token", "alg", "kid", "typ", "iss", "aud", "sub", "client_id", "kind", "actors"}).
Every token must verify with the key from the JWKS named by its kid, with audience
and issuer checks on; every kid must be the RFC 7638 thumbprint of its JWK. Any
mismatch prints FAIL and the exit code is 1. No PyJWKClient: keys come from the
file through jwt.PyJWK.
"""
import base64
import hashlib
import json
import os
import sys

import jwt

REQUIRED = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


def thumbprint(jwk):
    members = {name: jwk[name] for name in REQUIRED[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def actors(act):
    chain = []
    while act is not None:
        if set(act) - {"sub", "iss", "act"}:
            raise ValueError("act level has members other than sub/iss/act: %r" % act)
        chain.append(act["sub"])
        act = act.get("act")
    return chain


def check(case, keys):
    token = case["token"]
    header = jwt.get_unverified_header(token)
    if list(header) != ["alg", "kid", "typ"]:
        raise ValueError("header members %r, want alg, kid, typ in order" % list(header))
    want = {"alg": case["alg"], "kid": case["kid"], "typ": case["typ"]}
    if header != want:
        raise ValueError("header %r, want %r" % (header, want))
    key, jwk_alg = keys[header["kid"]]
    if jwk_alg != case["alg"]:
        raise ValueError("JWKS alg %s, token alg %s" % (jwk_alg, case["alg"]))
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[case["alg"]],
        audience=case["aud"],
        issuer=case["iss"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    for name in ("sub", "client_id"):
        if claims.get(name) != case[name]:
            raise ValueError("%s %r, want %r" % (name, claims.get(name), case[name]))
    if actors(claims.get("act")) != case["actors"]:
        raise ValueError("act chain %r, want %r" % (actors(claims.get("act")), case["actors"]))
    if case["kind"] == "transaction_token" and "txn" not in claims:
        raise ValueError("transaction token without txn")
    if case["kind"] == "access_token" and "txn" in claims:
        raise ValueError("access token with txn")
    # A wrong audience must be refused (the check is really on).
    try:
        jwt.decode(token, key.key, algorithms=[case["alg"]], audience="https://other.example",
                   issuer=case["iss"])
        raise ValueError("accepted with a wrong audience")
    except jwt.InvalidAudienceError:
        pass


def main(directory):
    with open(os.path.join(directory, "jwks.json"), encoding="utf-8") as f:
        jwks = json.load(f)
    with open(os.path.join(directory, "tokens.json"), encoding="utf-8") as f:
        cases = json.load(f)
    keys = {}
    failures = 0
    for jwk in jwks["keys"]:
        if jwk.get("use") != "sig" or "d" in jwk or thumbprint(jwk) != jwk["kid"]:
            print("FAIL jwk %s: use/private member/thumbprint mismatch" % jwk.get("kid"))
            failures += 1
            continue
        keys[jwk["kid"]] = (jwt.PyJWK(jwk), jwk["alg"])
    for case in cases:
        label = "%s %s" % (case["alg"], case["kind"])
        try:
            check(case, keys)
            print("ok   %s" % label)
        except Exception as e:  # noqa: BLE001 - report every failure, then exit 1
            print("FAIL %s: %s: %s" % (label, type(e).__name__, e))
            failures += 1
    if not cases or not keys:
        print("FAIL nothing to verify")
        failures += 1
    print("pyjwt %s: %d tokens, %d failures" % (jwt.__version__, len(cases), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
