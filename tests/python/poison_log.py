#!/usr/bin/env python3
"""An identity that is not the domain's services (auditor, operator, or an admitted agent) tries
every way the 2026-12 security review found to change what ACCORD_EVENTS says, with nats-py
only:

- JetStream API requests whose reply subject is an event subject of the log (finding 1):
  $JS.API.INFO, STREAM.INFO, STREAM.MSG.GET, DIRECT.GET of a missing and of a real sequence
  (with and without the JetStream domain prefix), CONSUMER.INFO;
- pulling from a projection's durable consumer (finding 3) and creating consumers whose
  deliveries go to an event subject or to another agent's feed (finding 2);
- stream updates that would add a subject, a source or a transform, or seal the log
  (finding 7);
- a plain publish of an event.

It prints one JSON line: what it sent and every answer it got (an answer means the server
acted on the request). The test that runs it checks that the log did not change.

Usage: poison_log.py --nats-url URL --ca PEM --domain D
         (--seed NKEY_SEED_FILE | --agent-dir DIR) [--victim AGENT_ID] [--consumer NAME]
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

import nats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from watch_revocations import proof_token  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nats-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--stream", default="ACCORD_EVENTS")
    ap.add_argument("--seed")
    ap.add_argument("--agent-dir")
    ap.add_argument("--victim", default="0190c8a0-0000-7000-8000-000000000000")
    ap.add_argument("--consumer", default="accord-proj-mem-credentials-g1")
    a = ap.parse_args()

    errors = []

    async def on_error(e):
        errors.append(str(e))

    ctx = ssl.create_default_context(cafile=a.ca)
    opts = dict(tls=ctx, error_cb=on_error, allow_reconnect=False, connect_timeout=5)
    inbox_prefix = None
    if a.seed:
        opts["nkeys_seed"] = a.seed
    else:
        agent = json.load(open(os.path.join(a.agent_dir, "agent.json")))
        wit = open(os.path.join(a.agent_dir, "wit.jwt")).read().strip()
        key = serialization.load_der_private_key(
            open(os.path.join(a.agent_dir, "key.pk8"), "rb").read(), None)
        opts.update(user=wit, password=proof_token(key, wit, a.domain))
        inbox_prefix = f"accord.feed.{agent['agent_id']}.inbox"
        opts["inbox_prefix"] = inbox_prefix
    nc = await nats.connect(a.nats_url, **opts)

    d, s = a.domain, a.stream
    evt = f"accord.evt.{d}.agent.{a.victim}.CredentialRevoked"
    feed = f"accord.feed.{a.victim}.deliver"
    # everything it could see come back, on its own inboxes
    answers = []
    own = nc.new_inbox()

    async def on_answer(m):
        answers.append({"subject": m.subject, "data": m.data[:200].decode(errors="replace")})

    try:
        await nc.subscribe(own, cb=on_answer)
    except Exception as e:  # an agent may subscribe only to its own feed subjects
        errors.append(str(e))

    sent = []

    async def send(subject, body=b"", reply=None):
        sent.append({"subject": subject, "reply": reply})
        try:
            await nc.publish(subject, body, reply=reply or own)
        except Exception as e:
            errors.append(f"{subject}: {e}")

    # finding 1: answers of the JetStream API, aimed at an event subject of the log
    for api in ("$JS.API", f"$JS.{d}.API"):
        await send(f"{api}.INFO", reply=evt)
        await send(f"{api}.STREAM.INFO.{s}", reply=evt)
        await send(f"{api}.STREAM.MSG.GET.{s}", b'{"seq": 1}', reply=evt)
        await send(f"{api}.DIRECT.GET.{s}", b'{"seq": 999999999}', reply=evt)
        await send(f"{api}.DIRECT.GET.{s}", b'{"seq": 1}', reply=evt)
        await send(f"{api}.DIRECT.GET.{s}", b'{"seq": 1, "batch": 5}', reply=evt)
        await send(f"{api}.CONSUMER.INFO.{s}.rev-{a.victim}", reply=evt)
    # finding 3: pull a projection's deliveries away from it
    for _ in range(5):
        await send(f"$JS.API.CONSUMER.MSG.NEXT.{s}.{a.consumer}",
                   json.dumps({"batch": 1, "expires": 30_000_000_000}).encode())
    # finding 2: consumers that deliver into the log or onto another agent's feed
    filt = f"accord.evt.{d}.agent.*.CredentialRevoked"
    for name, deliver in ((f"rev-{a.victim}", feed), ("poison", evt)):
        cfg = {"stream_name": s, "action": "create", "config": {
            "name": name, "durable_name": name, "deliver_subject": deliver,
            "filter_subject": filt, "ack_policy": "none", "deliver_policy": "all",
            "headers_only": True}}
        await send(f"$JS.API.CONSUMER.CREATE.{s}.{name}.{filt}", json.dumps(cfg).encode())
        await send(f"$JS.API.CONSUMER.CREATE.{s}", json.dumps(cfg).encode())
    # finding 7: updates that would write, seal or limit the log
    base = {"name": s, "subjects": [f"accord.evt.{d}.>"], "storage": "file",
            "deny_delete": True, "deny_purge": True, "allow_direct": True}
    for change in (
        {"subjects": [f"accord.evt.{d}.>", "_INBOX.poison.>"]},
        {"sealed": True},
        {"sources": [{"name": "ACCORD_DECISIONS"}]},
        {"max_msgs": 1},
        {"subject_transform": {"src": "_INBOX.poison.>", "dest": evt}},
    ):
        await send(f"$JS.API.STREAM.UPDATE.{s}", json.dumps({**base, **change}).encode())
    # and the plain way
    await send(evt, b"{}")
    await nc.flush()
    await asyncio.sleep(1.5)
    print(json.dumps({
        "sent": len(sent),
        "answers": answers,
        "violations": [e for e in errors if "permissions violation" in e.lower()],
        "errors": errors,
    }), flush=True)
    await nc.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
