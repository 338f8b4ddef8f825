#!/usr/bin/env python3
"""Independent check of Accord's transparency log, by code that shares nothing with Accord,
written from RFC 6962 / RFC 9162 and the C2SP signed-note and tlog-checkpoint specs:

- export (--export FILE, JSON Lines): header format accord-audit-export version 1; sequences
  1, 2, 3, ... without gaps; each leaf is the exact bytes of the line's `message` member, hashed
  SHA-256(0x00 || bytes); each CheckpointSigned event's note is signed by the audit key for the
  origin, agrees with the event's tree_size/root_hash, covers only earlier leaves, and its root
  is the RFC 6962 Merkle Tree Hash of leaves 1..tree_size (the RFC's recursive definition);
- inclusion / consistency proofs (--inclusion / --consistency FILE): RFC 9162 §2.1.3.2 /
  §2.1.4.2, and against the export and any attached checkpoint;
- checkpoints held elsewhere (--checkpoint NOTEFILE): signature, origin, and the root against
  the export when the export reaches that size.

Usage: check_audit.py --audit-key X_B64URL --origin ORIGIN [--export FILE]
           [--inclusion FILE]... [--consistency FILE]... [--checkpoint NOTEFILE]... [-v]
(exit 0 only if all hold; one line per problem, then a summary line)
"""
import argparse
import base64
import binascii
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962 §2.1: MTH({}) = SHA-256()
MESSAGE_MEMBER = b',"message":'
SIG_PREFIX = "\u2014 "  # C2SP signed-note: EM DASH, space, key name, space, base64 signature


class Bad(Exception):
    """One problem, described in one line."""


ERRORS = (Bad, KeyError, ValueError, TypeError, AttributeError, OSError)  # i.e. malformed input


def describe(e):
    if isinstance(e, KeyError):
        return f"malformed: missing member {e}"
    return str(e) if isinstance(e, Bad) else f"malformed: {e}"


def b64std(s, what):
    """Standard base64 with padding, accepting only the canonical encoding."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise Bad(f"{what} is not standard base64")
    if base64.b64encode(raw).decode() != s:
        raise Bad(f"{what} is not canonical base64")
    return raw


def hash32(s, what):
    raw = b64std(s, what)
    if len(raw) != 32:
        raise Bad(f"{what} is not 32 bytes")
    return raw


def uint(v, what):
    if type(v) is not int or v < 0:
        raise Bad(f"{what} is not a non-negative integer")
    return v


# ---- RFC 6962 §2.1 hashing -------------------------------------------------------------------

def leaf_hash(data):  # MTH({d}) = SHA-256(0x00 || d)
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):  # interior node: SHA-256(0x01 || left || right)
    return hashlib.sha256(b"\x01" + left + right).digest()


class Leaves:
    """Leaf hashes in log order; mth(n) is MTH(D[0:n]) by the RFC's recursive definition."""

    def __init__(self):
        self.hashes, self.memo = [], {}  # memo: (start, size) -> hash, power-of-two subtrees only

    def mth(self, n, start=0):
        """MTH(D[start:start+n])."""
        if n <= 1:
            return self.hashes[start] if n else EMPTY_ROOT
        if (start, n) in self.memo:
            return self.memo[(start, n)]
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
        h = node_hash(self.mth(k, start), self.mth(n - k, start + k))
        if n & (n - 1) == 0:
            self.memo[(start, n)] = h
        return h


# ---- RFC 9162 proof verification -------------------------------------------------------------

def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, path):
    """RFC 9162 §2.1.4.2, plus the trivial cases first == 0 and first == second."""
    if first > second:
        return False
    if first == 0:  # the empty tree is a prefix of every tree (its root is checked elsewhere)
        return not path
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    if first & (first - 1) == 0:  # first is an exact power of two
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# ---- C2SP signed-note / tlog-checkpoint ------------------------------------------------------

def open_note(text, origin, pub_raw, pub):
    """Parse and verify a checkpoint note; returns (size, root, extension lines) or raises Bad.
    Signatures by other keys are ignored; at least one by the audit key must verify."""
    if any(c < " " and c != "\n" for c in text):
        raise Bad("note contains control characters")
    split = text.find("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise Bad("note is malformed (no blank line before signatures, or no final newline)")
    body, sigs = text[:split + 1], text[split + 2:]  # body (the signed text) keeps its last "\n"
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise Bad("checkpoint has fewer than three lines")
    if lines[0] != origin:
        raise Bad(f"checkpoint origin {lines[0]!r} is not {origin!r}")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
        raise Bad(f"checkpoint size {lines[1]!r} is not a decimal number")
    root = hash32(lines[2], "checkpoint root")
    if not sigs:
        raise Bad("note has no signatures")
    # Ed25519 key id: SHA-256(key name || 0x0A || 0x01 || public key)[:4]; the key name is the origin.
    want_id = hashlib.sha256(origin.encode() + b"\n\x01" + pub_raw).digest()[:4]
    good = bad = 0
    for line in sigs[:-1].split("\n"):
        name, _, sig_b64 = line[len(SIG_PREFIX):].rpartition(" ")
        if not line.startswith(SIG_PREFIX) or not name or re.search(r"[\s+]", name):
            raise Bad(f"note signature line {line!r} is malformed")
        blob = b64std(sig_b64, "note signature")
        if len(blob) < 5:
            raise Bad("note signature is too short")
        if name != origin or blob[:4] != want_id:
            continue  # another key's signature
        try:
            pub.verify(blob[4:], body.encode())
            good += 1
        except InvalidSignature:
            bad += 1
    if bad:
        raise Bad("checkpoint signature by the audit key does not verify")
    if not good:
        raise Bad("checkpoint has no signature by the audit key")
    return int(lines[1]), root, lines[3:]


# ---- the checks ------------------------------------------------------------------------------

def message_bytes(line, obj):
    """The leaf: the line's bytes after ',"message":' up to (not including) its final '}'."""
    i = line.find(MESSAGE_MEMBER)
    if i < 0 or not line.endswith(b"}"):
        raise Bad("no message member at the end of the line")
    msg = line[i + len(MESSAGE_MEMBER):-1]
    # Make sure the cut really is the object's last, top-level member, as JSON reads it.
    head = json.loads(line[:i] + b"}")
    if "message" in head or list(obj)[-1] != "message" or json.loads(msg) != obj["message"]:
        raise Bad("message is not the line's last member")
    if not isinstance(obj["message"], dict):
        raise Bad("message is not a JSON object")
    return msg


class Audit:
    def __init__(self, args):
        self.args = args
        self.pub_raw = base64.urlsafe_b64decode(args.audit_key + "=" * (-len(args.audit_key) % 4))
        self.pub = Ed25519PublicKey.from_public_bytes(self.pub_raw)
        self.leaves = Leaves() if args.export else None
        self.problems = self.checkpoints = self.beyond = 0

    def problem(self, where, what):
        print(f"{where}: {what}")
        self.problems += 1

    def attempt(self, where, check, *args):
        """Run one check; malformed input or a failed note becomes one problem line."""
        try:
            return check(*args)
        except ERRORS as e:
            self.problem(where, describe(e))

    def against_export(self, where, size, root, what):
        """A stated root must be the export's MTH at that size (when the export is that long)."""
        leaves = self.leaves if self.leaves is not None else Leaves()  # no export: only MTH({}) known
        if size > len(leaves.hashes):
            self.beyond += self.leaves is not None
        elif root != leaves.mth(size):
            self.problem(where, f"{what} is not the Merkle root of the first {size} leaves")

    def check_note(self, where, text, size, root):
        """A note must verify and, when size/root are given, state exactly those."""
        n_size, n_root, ext = open_note(text, self.args.origin, self.pub_raw, self.pub)
        if size is not None and n_size != size:
            self.problem(where, f"checkpoint size {n_size} is not {size}")
        if root is not None and n_root != root:
            self.problem(where, "checkpoint root differs from the stated root")
        if self.args.verbose:  # extension lines (Accord's `domain ...`, `time ...`) are reported only
            print(f"{where}: checkpoint {n_size} signed; extension lines {ext}")
        return n_size, n_root

    def export(self, path):
        lines = open(path, "rb").read().split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the final newline
        header = self.attempt(path, json.loads, lines[0]) if lines else None
        header = header if isinstance(header, dict) else {}
        if header.get("format") != "accord-audit-export" or header.get("version") != 1:
            self.problem(path, "header is not accord-audit-export version 1")
        expected, checkpoints = 1, []
        for lineno, line in enumerate(lines[1:], start=2):
            where = f"line {lineno}"
            try:
                obj = json.loads(line)
                seq = uint(obj["seq"], "seq")
                where = f"seq {seq}"
                if seq != expected:
                    self.problem(where, f"out of sequence (expected seq {expected})")
                expected = seq + 1
                self.leaves.hashes.append(leaf_hash(message_bytes(line, obj)))
                event = obj["message"]["event"]
                if event.get("type") == "CheckpointSigned":
                    checkpoints.append((seq, event["data"]))
            except ERRORS as e:
                self.problem(where, describe(e))
        for member, want in (("first_seq", 1), ("last_seq", expected - 1)):
            if member in header and header[member] != want:
                self.problem(path, f"header {member} is {header[member]}, the lines say {want}")
        self.checkpoints = len(checkpoints)
        for seq, data in checkpoints:
            self.attempt(f"seq {seq}", self.export_checkpoint, seq, data)

    def export_checkpoint(self, seq, data):
        where, n = f"seq {seq}", len(self.leaves.hashes)
        size, root = uint(data["tree_size"], "tree_size"), hash32(data["root_hash"], "root_hash")
        self.attempt(where, self.check_note, where, data["note"], size, root)  # the rest holds regardless
        if size >= seq:
            self.problem(where, f"checkpoint covers leaves up to {size}, not only earlier ones")
        elif size > n:
            self.problem(where, f"checkpoint size {size} exceeds the {n} leaves read")
        elif self.leaves.mth(size) != root:
            self.problem(where, "checkpoint root does not match the leaves")

    def inclusion(self, path):
        p = json.load(open(path, "rb"))
        seq, index, size = (uint(p[k], k) for k in ("seq", "leaf_index", "tree_size"))
        leaf, root = hash32(p["leaf_hash"], "leaf_hash"), hash32(p["root_hash"], "root_hash")
        hashes = [hash32(h, "proof hash") for h in p["hashes"]]
        if index != seq - 1:
            self.problem(path, f"leaf_index {index} is not seq {seq} - 1")
        if not verify_inclusion(index, size, leaf, hashes, root):
            self.problem(path, f"inclusion proof of leaf {index} in tree {size} does not verify")
        exported = self.leaves.hashes if self.leaves is not None else []
        if 0 < seq <= len(exported) and exported[seq - 1] != leaf:
            self.problem(path, f"leaf_hash is not the hash of seq {seq} in the export")
        self.against_export(path, size, root, "root_hash")
        if p.get("checkpoint") is not None:
            self.attempt(path, self.check_note, path, p["checkpoint"], size, root)

    def consistency(self, path):
        p = json.load(open(path, "rb"))
        first, second = uint(p["first"], "first"), uint(p["second"], "second")
        r1, r2 = hash32(p["first_root"], "first_root"), hash32(p["second_root"], "second_root")
        hashes = [hash32(h, "proof hash") for h in p["hashes"]]
        if not verify_consistency(first, second, r1, r2, hashes):
            self.problem(path, f"consistency proof {first} -> {second} does not verify")
        for size, root, member in ((first, r1, "first_checkpoint"), (second, r2, "second_checkpoint")):
            self.against_export(path, size, root, f"root at size {size}")
            if p.get(member) is not None:
                where = f"{path} ({member})"
                self.attempt(where, self.check_note, where, p[member], size, root)

    def checkpoint_file(self, path):
        size, root = self.check_note(path, open(path, "rb").read().decode("utf-8"), None, None)
        self.against_export(path, size, root, "checkpoint root")


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audit-key", required=True, help="audit Ed25519 public key, base64url (JWK x)")
    ap.add_argument("--origin", required=True, help="checkpoint origin, also the note's key name")
    ap.add_argument("--export", help="audit export, JSON Lines")
    ap.add_argument("--inclusion", action="append", default=[], help="inclusion proof JSON")
    ap.add_argument("--consistency", action="append", default=[], help="consistency proof JSON")
    ap.add_argument("--checkpoint", action="append", default=[], help="signed checkpoint note")
    ap.add_argument("-v", "--verbose", action="store_true", help="also report each checkpoint")
    argv = sys.argv[1:]  # a base64url key may start with "-": keep argparse from taking it for an option
    argv = [f"--audit-key={argv[i + 1]}" if a == "--audit-key" and i + 1 < len(argv) else a
            for i, a in enumerate(argv) if i == 0 or argv[i - 1] != "--audit-key"]
    args = ap.parse_args(argv)
    if not (args.export or args.inclusion or args.consistency or args.checkpoint):
        ap.error("nothing to check: give --export, --inclusion, --consistency or --checkpoint")
    try:
        audit = Audit(args)
    except ValueError as e:
        print(f"--audit-key: not a 32-byte Ed25519 public key ({e})")
        return 1
    parts = []  # for the summary: only what was asked for
    if args.export:
        audit.attempt(args.export, audit.export, args.export)
        n = len(audit.leaves.hashes)
        parts += [f"{n} lea{'f' if n == 1 else 'ves'}", plural(audit.checkpoints, "checkpoint")]
    for files, check, word in ((args.checkpoint, audit.checkpoint_file, "checkpoint file"),
                               (args.inclusion, audit.inclusion, "inclusion proof"),
                               (args.consistency, audit.consistency, "consistency proof")):
        for path in files:
            audit.attempt(path, check, path)
        parts += [plural(len(files), word)] if files else []
    beyond = f" ({audit.beyond} beyond the export, roots not compared)" if audit.beyond else ""
    if audit.problems:
        print(f"audit: {plural(audit.problems, 'problem')} in {', '.join(parts)}{beyond}")
        return 1
    print(f"audit: {', '.join(parts)} hold{beyond}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
