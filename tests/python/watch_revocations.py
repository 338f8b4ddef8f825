#!/usr/bin/env python3
"""An Accord agent written with nats-py and pyca/cryptography only, sharing no code with Accord:
it connects to the domain's NATS with the credentials the ACA issued (user = its workload
identity token, password = a workload proof token it signs itself with its private key), reads
its revocation feed from a cursor, and probes what it must not be able to do.

- the proof token: compact JWS, header {"alg": "ES256"|"EdDSA", "typ": "wpt+jwt"}, claims
  aud "nats:<domain>", iat, exp (60 s), a random jti, wth = base64url(SHA-256(WIT));
- the feed: an ephemeral push consumer named rev-<agent id> on ACCORD_EVENTS, filtered on
  accord.evt.<domain>.agent.*.CredentialRevoked, delivering to accord.feed.<agent id>.deliver,
  from stream sequence cursor+1 (the cursor file; 0 = from the start), no acks;
- probes (--probe): publishing an event to accord.evt.<domain>.> (the server must report a
  permissions violation), creating a consumer of another name or another filter (refused).

Usage: watch_revocations.py --nats-url URL --ca PEM --dir AGENT_DIR --domain D
         [--cursor-file F] [--expect N] [--timeout SECS] [--probe] [--replay-proof FILE]
Prints one JSON line per revocation ({"seq", "agent_id", "serials", "reason", "revoked_at"}),
then {"summary": {...}}. Exit 0 when it connected (and received --expect revocations), 2 when
the server refused the connection, 1 otherwise.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import ssl
import sys
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def proof_token(key, wit, domain):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise SystemExit("unsupported key type")
    now = int(time.time())
    header = {"alg": alg, "typ": "wpt+jwt"}
    claims = {
        "aud": f"nats:{domain}",
        "iat": now,
        "exp": now + 60,
        "jti": b64url(os.urandom(16)),
        "wth": b64url(hashlib.sha256(wit.encode()).digest()),
    }
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(signing_input)
    return signing_input.decode() + "." + b64url(sig)


def revocation_of(msg):
    event = json.loads(msg.data)["event"]
    data = event["data"]
    return {
        "seq": msg.metadata.sequence.stream,
        "agent_id": event["aggregate"]["id"],
        "serials": data["serials"],
        "reason": data["reason"],
        "revoked_at": data["revoked_at"],
        "subject": msg.subject,
    }


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nats-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--stream", default="ACCORD_EVENTS")
    ap.add_argument("--cursor-file")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--replay-proof", help="present the proof token in this file (written when absent)")
    a = ap.parse_args()

    agent = json.load(open(os.path.join(a.dir, "agent.json")))
    agent_id = agent["agent_id"]
    wit = open(os.path.join(a.dir, "wit.jwt")).read().strip()
    key = serialization.load_der_private_key(open(os.path.join(a.dir, "key.pk8"), "rb").read(), None)
    wpt = proof_token(key, wit, a.domain)
    if a.replay_proof:
        if os.path.exists(a.replay_proof):
            wpt = open(a.replay_proof).read().strip()
        else:
            open(a.replay_proof, "w").write(wpt)

    errors = []

    async def on_error(e):
        errors.append(str(e))

    ctx = ssl.create_default_context(cafile=a.ca)
    prefix = f"accord.feed.{agent_id}"
    summary = {"agent_id": agent_id, "connected": False}
    try:
        nc = await nats.connect(
            a.nats_url,
            tls=ctx,
            user=wit,
            password=wpt,
            inbox_prefix=f"{prefix}.inbox",
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=5,
            max_reconnect_attempts=0,
        )
    except Exception as e:  # the server refused the connection
        summary["refused"] = f"{type(e).__name__}: {e} {errors}"
        print(json.dumps({"summary": summary}), flush=True)
        return 2
    summary["connected"] = True
    js = nc.jetstream(timeout=3)

    cursor = 0
    if a.cursor_file and os.path.exists(a.cursor_file):
        cursor = int(open(a.cursor_file).read().strip() or "0")
    summary["from_cursor"] = cursor

    received = []
    done = asyncio.Event()

    async def on_msg(msg):
        nonlocal cursor
        r = revocation_of(msg)
        if r["seq"] <= cursor:
            return
        cursor = r["seq"]
        received.append(r)
        print(json.dumps(r), flush=True)
        if a.cursor_file:
            tmp = a.cursor_file + ".tmp"
            open(tmp, "w").write(str(cursor))
            os.replace(tmp, a.cursor_file)
        if a.expect and len(received) >= a.expect:
            done.set()

    deliver = f"{prefix}.deliver"
    filter_subject = f"accord.evt.{a.domain}.agent.*.CredentialRevoked"
    name = f"rev-{agent_id}"
    await nc.subscribe(deliver, cb=on_msg)
    try:
        await js.delete_consumer(a.stream, name)
    except Exception:
        pass  # none left from a previous run
    policy = (
        dict(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=cursor + 1)
        if cursor
        else dict(deliver_policy=DeliverPolicy.ALL)
    )
    await js.add_consumer(
        a.stream,
        ConsumerConfig(
            name=name,
            deliver_subject=deliver,
            filter_subject=filter_subject,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=300,
            **policy,
        ),
    )
    print(json.dumps({"ready": True}), flush=True)

    if a.probe:
        probes = {}
        # 1. an event published straight to the log
        evt = f"accord.evt.{a.domain}.agent.{agent_id}.CredentialRevoked"
        await nc.publish(evt, b"{}")
        await nc.flush()
        # 2. a consumer of another name, 3. its own name with a wider filter, 4. a durable one
        js = nc.jetstream(timeout=1)

        async def refused(make):
            try:
                await make()
                return False
            except Exception as e:
                return type(e).__name__
        probes["other_name"] = await refused(lambda: js.add_consumer(a.stream, ConsumerConfig(
            name="accord-proj-pg-registry-g1", deliver_subject=deliver, filter_subject=filter_subject,
            ack_policy=AckPolicy.NONE)))
        probes["wider_filter"] = await refused(lambda: js.add_consumer(a.stream, ConsumerConfig(
            name=name, deliver_subject=deliver, filter_subject=f"accord.evt.{a.domain}.>",
            ack_policy=AckPolicy.NONE)))
        probes["durable"] = await refused(lambda: js.add_consumer(a.stream, ConsumerConfig(
            durable_name=name, deliver_subject=deliver, ack_policy=AckPolicy.NONE)))
        probes["stream_info"] = await refused(lambda: js.stream_info(a.stream))
        await asyncio.sleep(0.5)
        probes["violations"] = [e for e in errors if "permissions violation" in e.lower()]
        probes["event_publish_refused"] = any(evt.lower() in e.lower() for e in probes["violations"])
        summary["probes"] = probes

    if a.expect:
        try:
            await asyncio.wait_for(done.wait(), a.timeout)
        except asyncio.TimeoutError:
            pass
    summary["received"] = len(received)
    summary["cursor"] = cursor
    summary["errors"] = errors
    print(json.dumps({"summary": summary}), flush=True)
    await nc.close()
    return 0 if len(received) >= a.expect else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
