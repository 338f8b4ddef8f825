#!/usr/bin/env python3
"""Checks an A2A Agent Card served by Accord's registry, twice, by code that shares nothing
with Accord:

1. the A2A project's own SDK (`a2a-sdk`): the card parses as an `AgentCard` (unknown members
   refused), and `a2a.utils.signing.create_signature_verifier` accepts its signature with the
   key the domain's JWKS names by `kid`. The key provider never follows a `jku`: a key comes
   from the JWKS file given, or not at all;
2. independently: the payload rebuilt with the `rfc8785` package (empty strings, lists and
   objects removed, `signatures` left out), the detached JWS verified with `jwcrypto`.

Then a copy with its description changed must fail both checks.

Usage: check_card.py --jwks FILE CARD_FILE   (prints one JSON line; exit 0 only if all hold)
"""
import argparse
import base64
import copy
import json
import sys

import rfc8785
from google.protobuf.json_format import ParseDict
from jwcrypto import jwk, jws

from a2a.types import AgentCard
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def clean(v):
    if isinstance(v, dict):
        out = {k: c for k, c in ((k, clean(x)) for k, x in v.items()) if c is not None}
        return out or None
    if isinstance(v, list):
        out = [c for c in (clean(x) for x in v) if c is not None]
        return out or None
    if isinstance(v, str) and not v:
        return None
    return v


def sdk_check(card, keys):
    parsed = ParseDict(card, AgentCard(), ignore_unknown_fields=False)

    def key_provider(kid, jku):
        # never fetched: a jku is ignored, the kid must be one the domain published
        for k in keys["keys"]:
            if k.get("kid") == kid:
                import jwt
                return jwt.PyJWK.from_dict(k)
        raise jws.InvalidJWSSignature("unknown kid")

    try:
        create_signature_verifier(key_provider, ["ES256", "EdDSA"])(parsed)
        return True, parsed
    except SignatureVerificationError:
        return False, parsed


def independent_check(card, keys):
    body = copy.deepcopy(card)
    sigs = body.pop("signatures", [])
    payload = rfc8785.dumps(clean(body) or {})
    for s in sigs:
        header = json.loads(base64.urlsafe_b64decode(s["protected"] + "=" * (-len(s["protected"]) % 4)))
        for k in keys["keys"]:
            if k.get("kid") != header.get("kid"):
                continue
            token = jws.JWS()
            try:
                token.deserialize(f'{s["protected"]}.{b64url(payload)}.{s["signature"]}')
                token.verify(jwk.JWK(**k), alg=header["alg"])
                return True
            except Exception:
                pass
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jwks", required=True)
    ap.add_argument("card")
    a = ap.parse_args()
    keys = json.load(open(a.jwks))
    card = json.load(open(a.card))
    sdk_ok, parsed = sdk_check(card, keys)
    ind_ok = independent_check(card, keys)
    tampered = copy.deepcopy(card)
    tampered["description"] = tampered.get("description", "") + " (changed)"
    sdk_tampered, _ = sdk_check(tampered, keys)
    ind_tampered = independent_check(tampered, keys)
    out = {
        "parsed_name": parsed.name,
        "skills": [s.id for s in parsed.skills],
        "interfaces": [i.protocol_binding for i in parsed.supported_interfaces],
        "sdk_verified": sdk_ok,
        "independent_verified": ind_ok,
        "tampered_rejected": not sdk_tampered and not ind_tampered,
    }
    print(json.dumps(out))
    sys.exit(0 if sdk_ok and ind_ok and out["tampered_rejected"] else 1)


if __name__ == "__main__":
    main()
