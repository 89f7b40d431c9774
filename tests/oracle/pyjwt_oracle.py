"""Independent PASSporT oracle for the interoperability tests: PyJWT + cryptography.

Commands (all output is JSON on stdout; exit 1 with a message on stderr when a check fails):
  keygen DIR                       P-256 key as SEC1 (key-sec1.pem) and PKCS#8 (key-pkcs8.pem),
                                   and a self-signed certificate for it (cert.pem)
  sign DIR X5U ORIG DEST IAT [PPT [NAM [CRN]]]
                                   sign a PASSporT with DIR's key, PyJWT's way: SHAKEN by
                                   default, with Rich Call Data (rcd.nam, crn) when NAM is
                                   given; PPT rcd makes an RFC 9795 rcd PASSporT
  verify TOKEN CERT                verify a compact token with the certificate's key
  verify-list FILE CERT            verify the regulator's signed list in FILE with the
                                   certificate's key; show its header, its payload as text and
                                   the certificate's x5t#S256
"""

import base64
import datetime
import json
import pathlib
import sys
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def keygen(directory):
    out = pathlib.Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    out.joinpath("key-sec1.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    out.joinpath("key-pkcs8.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "SHAKEN PYJW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Oracle"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .sign(key, hashes.SHA256())
    )
    out.joinpath("cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    print(json.dumps({"ok": True}))


def sign(directory, x5u, orig, dest, iat, ppt="shaken", nam=None, crn=None):
    key_pem = pathlib.Path(directory).joinpath("key-pkcs8.pem").read_bytes()
    key = serialization.load_pem_private_key(key_pem, password=None)
    # Deliberately not canonical: PyJWT keeps this insertion order in the payload.
    payload = {}
    if nam is not None:
        # rcd first, its own members out of order too (apn: an alternate number, RFC 9795).
        payload["rcd"] = {"nam": nam, "apn": orig}
    payload["orig"] = {"tn": orig}
    if ppt == "shaken":
        payload["origid"] = str(uuid.uuid4())
    payload["iat"] = int(iat)
    if crn is not None:
        payload["crn"] = crn
    payload["dest"] = {"tn": [dest]}
    if ppt == "shaken":
        payload["attest"] = "A"
    headers = {"typ": "passport", "ppt": ppt, "x5u": x5u}
    token = jwt.encode(payload, key, algorithm="ES256", headers=headers)
    print(json.dumps({"token": token, "payload": payload}))


def verify(token, cert_path):
    cert = x509.load_pem_x509_certificate(pathlib.Path(cert_path).read_bytes())
    try:
        claims = jwt.decode(
            token,
            cert.public_key(),
            algorithms=["ES256"],
            options={"verify_iat": False, "verify_exp": False, "verify_nbf": False},
        )
    except jwt.InvalidTokenError as error:
        print(f"PyJWT rejected the token: {error!r}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"header": jwt.get_unverified_header(token), "claims": claims}))


def verify_list(path, cert_path):
    token = pathlib.Path(path).read_text().removesuffix("\n")
    cert = x509.load_pem_x509_certificate(pathlib.Path(cert_path).read_bytes())
    try:
        decoded = jwt.api_jws.decode_complete(token, cert.public_key(), algorithms=["ES256"])
    except jwt.InvalidTokenError as error:
        print(f"PyJWT rejected the list: {error!r}", file=sys.stderr)
        sys.exit(1)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    thumbprint = base64.urlsafe_b64encode(digest.finalize()).rstrip(b"=").decode()
    print(
        json.dumps(
            {
                "header": decoded["header"],
                "payload": decoded["payload"].decode(),
                "x5t#S256": thumbprint,
            }
        )
    )


def main(argv):
    commands = {"keygen": keygen, "sign": sign, "verify": verify, "verify-list": verify_list}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
