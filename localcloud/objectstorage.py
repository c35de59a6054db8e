"""localcloud's Object Storage: a real S3 server (moto's S3 service in server mode) standing in
for Hetzner Object Storage, over HTTPS, with one access key.

- **Where:** with real machines, ``https://198.51.100.1`` (port 443 on the public bridge, where the
  machines reach it as they reach Hetzner's endpoint over the internet, and this machine too);
  API only, ``https://127.0.0.1:<API port + 1>``.
- **TLS:** a certificate for those addresses, signed by a CA localcloud makes once
  (``<state>/objectstorage/ca.pem``). Hetzner's certificate chains to a public CA; here clients
  are given the CA file (the env's ``backups.s3_ca_file``).
- **Credentials:** every request must be signed with localcloud's access key (made once, kept
  in ``<state>/objectstorage/credentials.json``, 0600); any other key gets ``InvalidAccessKeyId``,
  a wrong secret ``SignatureDoesNotMatch``, as on Hetzner.
- **What it keeps:** buckets, versions, object lock (retention is enforced: a locked version
  cannot be deleted) live in memory and are written to ``<state>/objectstorage/buckets.pickle``
  when localcloud stops cleanly, read back when it starts.

What differs from Hetzner's service is listed in docs/localcloud-internals.md.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import os
import pickle
import secrets
import shutil
import socketserver
import ssl
import string
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HTTPS_PORT = 443
USER = "localcloud-objectstorage"
# every S3 action for the one key, as a Hetzner Object Storage key has on its project's buckets
POLICY = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_certificates(directory: Path, addresses: list[str]) -> tuple[Path, Path, Path]:
    """ca.pem (kept), and cert.pem/key.pem for ``addresses`` (remade when the addresses change)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_pem, ca_key_pem = directory / "ca.pem", directory / "ca-key.pem"
    cert_pem, key_pem = directory / "cert.pem", directory / "key.pem"
    now = datetime.datetime.now(datetime.UTC)
    pem = serialization.Encoding.PEM
    plain = (serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if ca_pem.exists() and ca_key_pem.exists():
        ca = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_pem.read_bytes(), None)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcloud Object Storage CA")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        _write_private(ca_key_pem, ca_key.private_bytes(pem, *plain))
        ca_pem.write_bytes(ca.public_bytes(pem))
    wanted = sorted(addresses)
    if cert_pem.exists() and key_pem.exists():
        current = x509.load_pem_x509_certificate(cert_pem.read_bytes())
        sans = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if (sorted(str(a) for a in sans.get_values_for_type(x509.IPAddress)) == wanted
                and current.issuer == ca.subject and current.not_valid_after_utc > now + datetime.timedelta(days=30)):
            return ca_pem, cert_pem, key_pem
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcloud Object Storage")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in wanted]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    _write_private(key_pem, key.private_bytes(pem, *plain))
    cert_pem.write_bytes(cert.public_bytes(pem))
    return ca_pem, cert_pem, key_pem


def ensure_credentials(path: Path) -> Credentials:
    """The one access key, made once (shaped like Hetzner's: 20 and 40 characters)."""
    if path.exists():
        data = json.loads(path.read_text())
        return Credentials(data["access_key"], data["secret_key"])
    upper = string.ascii_uppercase + string.digits
    made = Credentials("".join(secrets.choice(upper) for _ in range(20)),
                       "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)))
    _write_private(path, json.dumps({"access_key": made.access_key, "secret_key": made.secret_key}).encode())
    return made


class ObjectStorage:
    """The S3 server on ``address:port``; files (CA, key, saved buckets) in ``directory``."""

    def __init__(self, directory: Path | None, address: str, port: int) -> None:
        # no state directory (localcloud in memory): its files live as long as this process
        self._temporary = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="localcloud-objectstorage-"))
        self.address, self.port = address, port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.credentials = ensure_credentials(self.directory / "credentials.json")
        self.ca_file, self._cert, self._key = ensure_certificates(self.directory, sorted({address, "127.0.0.1"}))

    @property
    def endpoint(self) -> str:
        return f"https://{self.address}" + ("" if self.port == HTTPS_PORT else f":{self.port}")

    @property
    def _saved(self) -> Path:
        return self.directory / "buckets.pickle"

    def describe(self) -> dict[str, str]:
        """What a client needs (the side door GET /_localcloud/objectstorage)."""
        return {"endpoint": self.endpoint, "ca_file": str(self.ca_file), "access_key": self.credentials.access_key,
                "secret_key": self.credentials.secret_key, "region": "fsn1"}

    def start(self) -> None:
        # moto reads this once, when it is first imported: from the first request on, every one must be signed
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        from moto.moto_server.werkzeug_app import create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any) -> None:  # localcloud's log is for the API; S3 requests are many
                pass

        self._grant_key()
        self._load()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert, self._key)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(self.address, self.port, create_backend_app("s3"), threaded=True,
                                   ssl_context=context, request_handler=QuietHandler)
        self._server.shutdown_request = self._close_with_notify
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="objectstorage", daemon=True)
        self._thread.start()

    def _close_with_notify(self, request: Any) -> None:
        """End each connection with TLS's close_notify before the socket closes, as S3 services do:
        clients on OpenSSL 3 (pgBackRest) take a bare EOF after ``Connection: close`` for an error."""
        with contextlib.suppress(OSError, ValueError):
            request.unwrap()
        socketserver.TCPServer.shutdown_request(self._server, request)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            self._save()

    def _grant_key(self) -> None:
        """moto checks signatures against its IAM: the one key belongs to a user allowed every S3 action."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.iam.models import iam_backends

        iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
        if USER not in iam.users:
            iam.create_user("global", USER, "/", None)
            iam.put_user_policy(USER, "objectstorage", POLICY)
        user = iam.users[USER]
        if not any(k.access_key_id == self.credentials.access_key for k in user.access_keys):
            key = iam.create_access_key(USER)  # then given localcloud's own, kept values
            key.access_key_id, key.secret_access_key = self.credentials.access_key, self.credentials.secret_key

    def _backend(self) -> Any:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def _save(self) -> None:
        # a bucket's key store is a dict of version lists that pickle flattens to the newest
        # version: the lists are saved beside the buckets and put back with setlist
        buckets = self._backend().buckets
        versions = {name: {key: bucket.keys.getlist(key) for key in bucket.keys} for name, bucket in buckets.items()}
        tmp = self._saved.with_suffix(".tmp")
        _write_private(tmp, pickle.dumps((dict(buckets), versions)))
        os.replace(tmp, self._saved)

    def _load(self) -> None:
        if not self._saved.exists():
            return
        from moto.s3.utils import _VersionedKeyStore

        # our own file (0600, written by _save above), never anything a client sent
        buckets, versions = pickle.loads(self._saved.read_bytes())
        for name, bucket in buckets.items():
            store = _VersionedKeyStore()
            for key, kept in versions.get(name, {}).items():
                store.setlist(key, kept)
            bucket.keys = store
        self._backend().buckets.update(buckets)
