#!/usr/bin/env python3
"""Independent check of Accord's stored events, by code that shares nothing with Accord:

- canonical bytes: each message must equal its RFC 8785 form as computed by the `rfc8785`
  package (Trail of Bits), and so must its `event` member;
- signature: Ed25519 (pyca/cryptography) over b"accord-event-v1\\n" || JCS(event), by the key
  whose RFC 7638 thumbprint is the `kid`;
- schema (optional, --schemas DIR): the envelope and the event data validate against the
  checked-in JSON Schemas.

Usage: check_events.py --key X_B64URL [--schemas DIR] FILE...   (exit 0 only if all hold)
"""
import argparse
import base64
import hashlib
import json
import sys

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def thumbprint(x):
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True, help="Ed25519 public key, base64url (JWK x)")
    ap.add_argument("--schemas")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    pub = Ed25519PublicKey.from_public_bytes(b64url_decode(args.key))
    kid = thumbprint(args.key)
    validators = {}
    if args.schemas:
        import jsonschema
        def validator(name):
            if name not in validators:
                with open(f"{args.schemas}/{name}") as f:
                    validators[name] = jsonschema.Draft202012Validator(json.load(f))
            return validators[name]
    failures = 0
    for path in args.files:
        raw = open(path, "rb").read()
        msg = json.loads(raw)
        problems = []
        if rfc8785.dumps(msg) != raw:
            problems.append("message is not in RFC 8785 form")
        event_bytes = rfc8785.dumps(msg["event"])
        if msg["sig"]["kid"] != kid:
            problems.append(f"kid {msg['sig']['kid']} is not the thumbprint {kid}")
        try:
            pub.verify(b64url_decode(msg["sig"]["value"]), b"accord-event-v1\n" + event_bytes)
        except Exception:
            problems.append("signature does not verify")
        if args.schemas:
            ev = msg["event"]
            for err in validator("envelope.json").iter_errors(ev):
                problems.append(f"envelope: {err.message}")
            for err in validator(f"{ev['type']}.v{ev['version']}.json").iter_errors(ev["data"]):
                problems.append(f"data: {err.message}")
        if problems:
            failures += 1
            for p in problems:
                print(f"{path}: {p}")
    print(f"{len(args.files) - failures}/{len(args.files)} events hold")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
