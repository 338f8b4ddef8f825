#!/usr/bin/env python3
"""An Accord agent written with nats-py and pyca/cryptography only, sharing no code with Accord:
it connects to the domain's NATS with the credentials the ACA issued (user = its workload
identity token, password = a workload proof token it signs itself with its private key), asks
the ACA for its revocation feed from a cursor, checks every delivery itself, and probes what
it must not be able to do.

- the proof token: compact JWS, header {"alg": "ES256"|"EdDSA", "typ": "wpt+jwt"}, claims
  aud "nats:<domain>", iat, exp (60 s), a random jti, wth = base64url(SHA-256(WIT));
- the feed: a request on accord.feed.<agent id>.open with {"after": cursor}; the ACA creates
  the agent's consumer (rev-<agent id>), which delivers every
  accord.evt.<domain>.agent.*.CredentialRevoked to accord.feed.<agent id>.deliver;
- each delivery counts only when its $JS.ACK reply names rev-<agent id> of ACCORD_EVENTS, its
  payload is RFC 8785 JSON whose `event` member is signed (Ed25519 over
  b"accord-event-v1\n" || JCS(event)) by a key of the domain the agent pinned
  (domain.json in its folder, its kid the RFC 7638 thumbprint), and it is stored under the
  subject the event names; anything else is dropped and counted;
- probes (--probe): an event published to the log, JetStream API calls (consumer create,
  stream info, direct get), another agent's feed (--other AGENT_ID), and a request whose
  reply subject is an event subject (the server must report permission violations, and
  nothing may reach the log).

Usage: watch_revocations.py --nats-url URL --ca PEM --dir AGENT_DIR --domain D
         [--cursor-file F] [--expect N] [--timeout SECS] [--probe] [--other ID]
         [--replay-proof FILE]
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
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
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


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def thumbprint(x):
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(jwk.encode()).digest())


def pinned_keys(agent_dir):
    """kid -> public key, from the domain.json the agent keeps (each kid checked)."""
    d = json.load(open(os.path.join(agent_dir, "domain.json")))
    keys = {}
    for k in d["event_signing_keys"]:
        if k["alg"] != "Ed25519" or thumbprint(k["public_key"]) != k["kid"]:
            raise SystemExit(f"domain.json: key {k['kid']} does not match its thumbprint")
        keys[k["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(k["public_key"]))
    return d["domain_id"], keys


def ack_metadata(reply):
    """(stream, consumer, stream seq, consumer seq) of a $JS.ACK reply subject, or None."""
    t = (reply or "").split(".")
    if len(t) < 2 or t[0] != "$JS" or t[1] != "ACK":
        return None
    at = 2 if len(t) == 9 else 4 if len(t) >= 11 else None
    if at is None:
        return None
    try:
        return t[at], t[at + 1], int(t[at + 3]), int(t[at + 4])
    except ValueError:
        return None


def check_delivery(msg, keys, domain, stream, consumer):
    """The revocation a delivery carries, or raises ValueError(reason)."""
    meta = ack_metadata(msg.reply)
    if meta is None or meta[0] != stream or meta[1] != consumer:
        raise ValueError(f"not a delivery of {consumer}: reply {msg.reply!r}")
    raw = msg.data
    try:
        whole = json.loads(raw)
        event = whole["event"]
        sig = whole["sig"]
    except Exception as e:
        raise ValueError(f"not an event message: {e}")
    if rfc8785.dumps(whole) != raw:
        raise ValueError("not in RFC 8785 form")
    key = keys.get(sig.get("kid"))
    if key is None:
        raise ValueError(f"signed by {sig.get('kid')}, which is not pinned")
    try:
        key.verify(b64url_decode(sig["value"]), b"accord-event-v1\n" + rfc8785.dumps(event))
    except Exception:
        raise ValueError("the signature does not verify")
    agg = event["aggregate"]
    subject = f"accord.evt.{event['domain']}.{agg['type']}.{agg['id']}.{event['type']}"
    if event["domain"] != domain or subject != msg.subject or event["type"] != "CredentialRevoked":
        raise ValueError(f"stored under {msg.subject} but the event says {subject}")
    data = event["data"]
    return {
        "seq": meta[2],
        "cseq": meta[3],
        "agent_id": agg["id"],
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
    ap.add_argument("--other", help="another agent's id, for the probes")
    ap.add_argument("--replay-proof", help="present the proof token in this file (written when absent)")
    a = ap.parse_args()

    agent = json.load(open(os.path.join(a.dir, "agent.json")))
    agent_id = agent["agent_id"]
    pinned_domain, keys = pinned_keys(a.dir)
    if pinned_domain != a.domain:
        raise SystemExit(f"domain.json pins {pinned_domain}, not {a.domain}")
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

    cursor = 0
    if a.cursor_file and os.path.exists(a.cursor_file):
        cursor = int(open(a.cursor_file).read().strip() or "0")
    summary["from_cursor"] = cursor

    received = []
    dropped = []
    done = asyncio.Event()
    consumer = f"rev-{agent_id}"
    next_cseq = 1

    async def on_msg(msg):
        nonlocal cursor, next_cseq
        if msg.headers and msg.headers.get("Status") == "100":
            return  # heartbeat
        try:
            r = check_delivery(msg, keys, a.domain, a.stream, consumer)
        except ValueError as e:
            dropped.append({"subject": msg.subject, "reason": str(e)})
            return
        if r["cseq"] != next_cseq:
            dropped.append({"seq": r["seq"], "reason": f"consumer sequence {r['cseq']}, {next_cseq} expected"})
            return
        next_cseq += 1
        if r["seq"] <= cursor:
            return
        cursor = r["seq"]
        del r["cseq"]
        received.append(r)
        print(json.dumps(r), flush=True)
        if a.cursor_file:
            tmp = a.cursor_file + ".tmp"
            open(tmp, "w").write(str(cursor))
            os.replace(tmp, a.cursor_file)
        if a.expect and len(received) >= a.expect:
            done.set()

    deliver = f"{prefix}.deliver"
    await nc.subscribe(deliver, cb=on_msg)
    answer = await nc.request(f"{prefix}.open", json.dumps({"after": cursor}).encode(), timeout=5)
    opened = json.loads(answer.data)
    summary["opened"] = opened
    if "opened" not in opened or opened["opened"]["consumer"] != consumer:
        print(json.dumps({"summary": summary}), flush=True)
        await nc.close()
        return 1
    print(json.dumps({"ready": True}), flush=True)

    if a.probe:
        probes = {}
        # 1. an event published straight to the log
        evt = f"accord.evt.{a.domain}.agent.{agent_id}.CredentialRevoked"
        await nc.publish(evt, b"{}")
        # 2. the JetStream API: a consumer of its own (another name, another delivery subject),
        #    stream info, a direct get
        filt = f"accord.evt.{a.domain}.agent.*.CredentialRevoked"
        create = f"$JS.API.CONSUMER.CREATE.{a.stream}.{consumer}.{filt}"
        cfg = {"stream_name": a.stream, "action": "create", "config": {
            "name": consumer, "durable_name": consumer, "deliver_subject": deliver,
            "filter_subject": filt, "ack_policy": "none", "deliver_policy": "last", "headers_only": True}}
        await nc.publish(create, json.dumps(cfg).encode())
        await nc.publish(f"$JS.API.STREAM.INFO.{a.stream}", b"")
        await nc.publish(f"$JS.API.DIRECT.GET.{a.stream}", b'{"seq": 1}')
        await nc.publish("$JS.API.INFO", b"", reply=evt)
        # 3. another agent's feed: ask for it, listen to it
        if a.other:
            await nc.publish(f"accord.feed.{a.other}.open", b'{"after": 0}')
            try:
                await nc.subscribe(f"accord.feed.{a.other}.deliver")
            except Exception:
                pass
        # 4. its own feed request with an event subject (and another agent's feed) as reply
        await nc.publish(f"{prefix}.open", json.dumps({"after": cursor}).encode(), reply=evt)
        if a.other:
            await nc.publish(f"{prefix}.open", json.dumps({"after": cursor}).encode(),
                             reply=f"accord.feed.{a.other}.open")
            await nc.publish(f"{prefix}.open", json.dumps({"after": cursor}).encode(),
                             reply=f"accord.feed.{a.other}.deliver")
        await nc.flush()
        await asyncio.sleep(1)
        probes["violations"] = [e for e in errors if "permissions violation" in e.lower()]
        v = " ".join(probes["violations"]).lower()
        probes["event_publish_refused"] = evt.lower() in v
        probes["consumer_create_refused"] = create.lower() in v
        probes["stream_info_refused"] = f"$js.api.stream.info.{a.stream}".lower() in v
        probes["direct_get_refused"] = f"$js.api.direct.get.{a.stream}".lower() in v
        probes["js_info_refused"] = "$js.api.info" in v
        if a.other:
            probes["other_open_refused"] = f"accord.feed.{a.other}.open".lower() in v
            probes["other_subscribe_refused"] = f"accord.feed.{a.other}.deliver".lower() in v
        summary["probes"] = probes

    if a.expect:
        try:
            await asyncio.wait_for(done.wait(), a.timeout)
        except asyncio.TimeoutError:
            pass
    summary["received"] = len(received)
    summary["dropped"] = dropped
    summary["cursor"] = cursor
    summary["errors"] = errors
    print(json.dumps({"summary": summary}), flush=True)
    await nc.close()
    return 0 if len(received) >= a.expect else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
