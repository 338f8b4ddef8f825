"""An unmodified SPIFFE client (the SPIFFE project's `spiffe` package on PyPI) against the
Workload API that `accord agent sidecar` serves.

check: fetches the X.509-SVID, the X.509 and JWT bundles and a JWT-SVID; verifies the SVID's
       chain up to the bundle (cryptography) and the JWT-SVID under the JWT bundle; validates the
       JWT-SVID through the API, and checks that another audience is refused; calls without the
       `workload.spiffe.io` metadata (refused with INVALID_ARGUMENT). One JSON object out.
watch: follows FetchX509SVID; one JSON line per update (the leaf's serial), then the error that
       ends the stream, e.g. PERMISSION_DENIED once the credential is revoked.
fetch: one FetchX509SVID; its serial, or the gRPC error code.
"""

import argparse
import json
import sys
import threading

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from spiffe import JwtSvid, WorkloadApiClient
from spiffe._proto import workload_pb2, workload_pb2_grpc


def serial_of(svid):
    return format(svid.leaf.serial_number, "x")


def chains(leaf, chain, roots):
    """leaf -> intermediates -> a root of the bundle, each signature checked."""
    cert = leaf
    rest = list(chain)
    for _ in range(8):
        for issuer in rest + roots:
            try:
                cert.verify_directly_issued_by(issuer)
            except Exception:
                continue
            if issuer in roots:
                return True
            cert = issuer
            rest = [c for c in rest if c is not issuer]
            break
        else:
            return False
    return False


def check(args):
    out = {}
    with WorkloadApiClient(args.socket) as client:
        svid = client.fetch_x509_svid()
        out["spiffe_id"] = str(svid.spiffe_id)
        out["serial"] = serial_of(svid)
        ctx = client.fetch_x509_context()
        td = svid.spiffe_id.trust_domain
        bundle = ctx.x509_bundle_set.get_bundle_for_trust_domain(td)
        roots = list(bundle.x509_authorities) if bundle else []
        out["bundle_authorities"] = len(roots)
        out["chain_ok"] = chains(svid.leaf, svid.cert_chain[1:], roots)
        # the private key is the certificate's
        key = svid.private_key
        pub = svid.leaf.public_key()
        sig_data = b"accord"
        if isinstance(key, ec.EllipticCurvePrivateKey):
            sig = key.sign(sig_data, ec.ECDSA(svid.leaf.signature_hash_algorithm))
            pub.verify(sig, sig_data, ec.ECDSA(svid.leaf.signature_hash_algorithm))
        else:
            sig = key.sign(sig_data)
            pub.verify(sig, sig_data)
        out["key_matches"] = True
        bundles = client.fetch_x509_bundles()
        out["x509_bundle_domains"] = sorted(str(b.trust_domain) for b in bundles.bundles)

        jwt_svid = client.fetch_jwt_svid(audience={args.audience})
        out["jwt_spiffe_id"] = str(jwt_svid.spiffe_id)
        out["jwt_audience"] = sorted(jwt_svid.audience)
        jwt_bundles = client.fetch_jwt_bundles()
        jb = jwt_bundles.get_bundle_for_trust_domain(td)
        verified = JwtSvid.parse_and_validate(jwt_svid.token, jb, {args.audience})
        out["jwt_verified"] = str(verified.spiffe_id) == out["spiffe_id"]
        validated = client.validate_jwt_svid(jwt_svid.token, args.audience)
        out["jwt_validated"] = str(validated.spiffe_id)
        try:
            client.validate_jwt_svid(jwt_svid.token, args.audience + "-other")
            out["other_audience"] = "accepted"
        except Exception as e:  # ValidateJwtSvidError
            out["other_audience"] = type(e).__name__
        # a token of another signer: the same claims re-signed by a key of our own
        forged_key = ec.generate_private_key(ec.SECP256R1())
        import jwt as pyjwt

        claims = pyjwt.decode(jwt_svid.token, options={"verify_signature": False})
        header = pyjwt.get_unverified_header(jwt_svid.token)
        forged = pyjwt.encode(claims, forged_key, algorithm="ES256", headers={"kid": header["kid"]})
        try:
            client.validate_jwt_svid(forged, args.audience)
            out["forged"] = "accepted"
        except Exception as e:
            out["forged"] = type(e).__name__

    # without the security metadata
    path = args.socket[len("unix://"):] if args.socket.startswith("unix://") else args.socket
    with grpc.insecure_channel("unix:" + path) as ch:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(ch)
        try:
            next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=10))
            out["no_header"] = "OK"
        except grpc.RpcError as e:
            out["no_header"] = e.code().name
    print(json.dumps(out))


def raw_fetch(socket):
    path = socket[len("unix://"):] if socket.startswith("unix://") else socket
    with grpc.insecure_channel("unix:" + path) as ch:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(ch)
        try:
            r = next(
                stub.FetchX509SVID(
                    workload_pb2.X509SVIDRequest(),
                    timeout=10,
                    metadata=(("workload.spiffe.io", "true"),),
                )
            )
            from cryptography import x509

            leaf = x509.load_der_x509_certificate(r.svids[0].x509_svid[: der_len(r.svids[0].x509_svid)])
            return {"serial": format(leaf.serial_number, "x")}
        except grpc.RpcError as e:
            return {"error": e.code().name, "detail": e.details()}


def der_len(b):
    """Length of the first DER element of b (a SEQUENCE)."""
    n = b[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    return 2 + k + int.from_bytes(b[2 : 2 + k], "big")


def watch(args):
    done = threading.Event()

    def on_success(ctx):
        print(json.dumps({"serial": serial_of(ctx.default_svid)}), flush=True)
        if args.count and args.count_seen.append(1) is None and len(args.count_seen) >= args.count:
            done.set()

    def on_error(err):
        print(json.dumps({"error": str(err)}), flush=True)
        done.set()

    args.count_seen = []
    client = WorkloadApiClient(args.socket)
    handler = client.stream_x509_contexts(on_success, on_error, retry_connect=False)
    done.wait(args.timeout)
    handler.cancel()
    client.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["check", "watch", "fetch"])
    p.add_argument("--socket", required=True, help="unix:///path")
    p.add_argument("--audience", default="spiffe://example.org/relying-party")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--count", type=int, default=0)
    args = p.parse_args()
    if args.mode == "check":
        check(args)
    elif args.mode == "fetch":
        print(json.dumps(raw_fetch(args.socket)))
    else:
        watch(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
