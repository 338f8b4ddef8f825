#!/usr/bin/env python3
"""Independent check of an Accord agent credential, by code that shares nothing with Accord:

- the X.509-SVID (pyca/cryptography): signed by the CA of the chain, empty subject, exactly one
  SAN (a critical URI, the SPIFFE ID), KU critical digitalSignature only, EKU clientAuth and
  serverAuth, basicConstraints critical cA=false, AKI = the CA's SKI, the CRL distribution
  point, the capabilities extension (a DER SEQUENCE OF UTF8String, decoded here by hand) equal
  to the expected sorted set, nothing else, and the expected lifetime;
- the workload identity token (jwcrypto): verifies with the JWKS, header
  `{"alg":"ES256","kid":<RFC 7638 thumbprint>,"typ":"wit+jwt"}`, `sub` the SAN, `iss` the trust
  domain, `nbf`/`exp` the certificate's validity, `x5t_serial` its serial, `cnf.jwk` the public
  key of the agent's private key (coordinates compared), and it fails under another key.

Usage: check_credential.py --cert PEM --chain PEM --wit FILE --jwks FILE --key PEM
         --spiffe-id URI --trust-domain TD --capability C... [--lifetime SECS]
Prints a JSON summary; exit 0 only if every check holds (else the failed checks, exit 1).
"""
import argparse
import base64
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from jwcrypto import jwk, jws, jwt

CAPABILITIES_OID = "1.3.6.1.4.1.32473.7.1.2"
# owner, AIBOM digest, attestation: only when the issuance checked them (not in this part)
ABSENT_OIDS = ["1.3.6.1.4.1.32473.7.1.1", "1.3.6.1.4.1.32473.7.1.3", "1.3.6.1.4.1.32473.7.1.4"]


def b64url_uint(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def der_tlv(buf, pos):
    """One DER TLV at pos: (tag, value bytes, next position). Definite, minimal lengths only."""
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or buf[pos] == 0:
            raise ValueError("not a DER length")
        length = int.from_bytes(buf[pos:pos + n], "big")
        if length < 0x80:
            raise ValueError("long form for a short length")
        pos += n
    if pos + length > len(buf):
        raise ValueError("length beyond the data")
    return tag, buf[pos:pos + length], pos + length


def sequence_of_utf8(der):
    tag, body, end = der_tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not one SEQUENCE")
    out, pos = [], 0
    while pos < len(body):
        tag, value, pos = der_tlv(body, pos)
        if tag != 0x0C:
            raise ValueError(f"element with tag {tag:#x}, not UTF8String")
        out.append(value.decode("utf-8"))
    return out


def main():
    ap = argparse.ArgumentParser()
    for a in ["--cert", "--chain", "--wit", "--jwks", "--key", "--spiffe-id", "--trust-domain"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--capability", action="append", default=[])
    ap.add_argument("--lifetime", type=int, default=3600)
    args = ap.parse_args()

    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)
        return cond

    cert = x509.load_pem_x509_certificate(open(args.cert, "rb").read())
    chain = x509.load_pem_x509_certificates(open(args.chain, "rb").read())
    ca = chain[0]
    key = serialization.load_pem_private_key(open(args.key, "rb").read(), password=None)

    # the signature and the issuer
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        problems.append(f"not signed by the chain's CA: {e}")
    check(cert.version == x509.Version.v3, "not v3")
    check(len(cert.subject) == 0, f"subject is not empty: {cert.subject.rfc4514_string()}")
    check(cert.serial_number > 0, "serial not positive")

    exts = {e.oid.dotted_string: e for e in cert.extensions}

    # exactly one name: the SPIFFE ID, as a critical URI SAN
    san = exts.get(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    uris = []
    if check(san is not None, "no SAN"):
        check(san.critical, "SAN not critical (the subject is empty)")
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        check(len(list(san.value)) == 1, f"SAN holds {len(list(san.value))} names, not 1")
        check(uris == [args.spiffe_id], f"SAN URIs {uris} != [{args.spiffe_id}]")

    ku = exts.get(ExtensionOID.KEY_USAGE.dotted_string)
    if check(ku is not None, "no key usage"):
        check(ku.critical, "key usage not critical")
        v = ku.value
        check(v.digital_signature, "no digitalSignature")
        others = [n for n in ["content_commitment", "key_encipherment", "data_encipherment",
                              "key_agreement", "key_cert_sign", "crl_sign"] if getattr(v, n)]
        check(not others, f"key usage also allows {others}")

    eku = exts.get(ExtensionOID.EXTENDED_KEY_USAGE.dotted_string)
    if check(eku is not None, "no extended key usage"):
        got = set(eku.value)
        want = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
        check(got == want, f"EKU {[o.dotted_string for o in got]} is not clientAuth+serverAuth")

    bc = exts.get(ExtensionOID.BASIC_CONSTRAINTS.dotted_string)
    if check(bc is not None, "no basic constraints"):
        check(bc.critical, "basic constraints not critical")
        check(bc.value.ca is False, "cA is not false")

    aki = exts.get(ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string)
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    if check(aki is not None, "no AKI"):
        check(aki.value.key_identifier == ca_ski, "AKI is not the CA's SKI")
    ski = exts.get(ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string)
    check(ski is not None and not ski.critical, "no (non-critical) SKI")

    crldp = exts.get(ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string)
    crl_urls = []
    if check(crldp is not None, "no CRL distribution point"):
        for dp in crldp.value:
            for n in dp.full_name or []:
                if isinstance(n, x509.UniformResourceIdentifier):
                    crl_urls.append(n.value)
        check(len(crl_urls) == 1 and crl_urls[0].endswith("/v1/crl"),
              f"CRL distribution points {crl_urls}")

    caps = None
    cap_ext = exts.get(CAPABILITIES_OID)
    if check(cap_ext is not None, "no capabilities extension"):
        check(isinstance(cap_ext.value, x509.UnrecognizedExtension), "capabilities parsed?")
        try:
            caps = sequence_of_utf8(cap_ext.value.value)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            problems.append(f"capabilities extension is not a DER SEQUENCE OF UTF8String: {e}")
        want = sorted(set(args.capability))
        check(caps == want, f"capabilities {caps} != {want}")
    for oid in ABSENT_OIDS:
        check(oid not in exts, f"extension {oid} present though nothing was checked for it")
    known = {
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,
        ExtensionOID.KEY_USAGE.dotted_string,
        ExtensionOID.EXTENDED_KEY_USAGE.dotted_string,
        ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string,
        CAPABILITIES_OID,
    }
    check(set(exts) <= known, f"unexpected extensions {sorted(set(exts) - known)}")

    nb = cert.not_valid_before_utc
    na = cert.not_valid_after_utc
    lifetime = (na - nb).total_seconds()
    # the ACA backdates notBefore a little against clock skew
    check(args.lifetime <= lifetime <= args.lifetime + 120,
          f"validity of {lifetime} s, not about {args.lifetime} s")

    # the certificate carries the agent's key
    pub = key.public_key()
    check(cert.public_key() == pub, "the certificate's key is not the agent's key")

    # the workload identity token
    token = open(args.wit).read().strip()
    keyset = jwk.JWKSet.from_json(open(args.jwks).read())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = {}
    try:
        t = jwt.JWT(jwt=token, key=keyset, algs=["ES256"])
        claims = json.loads(t.claims)
    except Exception as e:  # noqa: BLE001
        problems.append(f"the WIT does not verify with the JWKS: {e}")
    signing = [k for k in keyset["keys"] if k.get("kid") == header.get("kid")]
    check(len(signing) == 1, f"no JWKS key with kid {header.get('kid')}")
    check(header.get("typ") == "wit+jwt", f"typ {header.get('typ')}")
    check(header.get("alg") == "ES256", f"alg {header.get('alg')}")
    if signing:
        check(signing[0].thumbprint() == header.get("kid"), "kid is not the RFC 7638 thumbprint")
    check(claims.get("sub") == args.spiffe_id and args.spiffe_id in uris, "sub is not the SAN")
    check(claims.get("iss") == f"spiffe://{args.trust_domain}", f"iss {claims.get('iss')}")
    check(claims.get("nbf") == int(nb.timestamp()), "nbf is not the certificate's notBefore")
    check(claims.get("exp") == int(na.timestamp()), "exp is not the certificate's notAfter")
    x5t = claims.get("x5t_serial")
    check(isinstance(x5t, str) and int(x5t, 16) == cert.serial_number,
          "x5t_serial is not the serial")
    check(claims.get("capabilities") == caps, "capabilities differ from the certificate's")
    check(args.spiffe_id.endswith("/agent/" + str(claims.get("agent_id"))), "agent_id")
    check(isinstance(claims.get("jti"), str) and len(claims["jti"]) >= 16, "jti")
    cnf = (claims.get("cnf") or {}).get("jwk") or {}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        check(cnf.get("kty") == "EC" and cnf.get("crv") == "P-256", f"cnf.jwk {cnf}")
        check(cnf.get("alg") == "ES256", "cnf.jwk has no alg ES256")
        check(b64url_uint(cnf.get("x", "")) == n.x and b64url_uint(cnf.get("y", "")) == n.y,
              "cnf.jwk is not the agent's public key")
        check("d" not in cnf, "cnf.jwk carries a private key")
    else:
        problems.append("the key is not EC")

    # and not under another key with the same kid (the verification above means something)
    stranger = jwk.JWK.generate(kty="EC", crv="P-256", kid=header.get("kid"))
    try:
        jwt.JWT(jwt=token, key=stranger, algs=["ES256"])
        problems.append("the WIT verifies under a stranger's key")
    except jws.InvalidJWSSignature:
        pass

    summary = {
        "ok": not problems,
        "problems": problems,
        "serial": f"{cert.serial_number:x}",
        "san": uris,
        "capabilities": caps,
        "lifetime": lifetime,
        "crl": crl_urls,
        "wit_sub": claims.get("sub"),
    }
    print(json.dumps(summary))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
