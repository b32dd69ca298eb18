"""Certificates for TLS tests, made with trustme in a temporary directory.

``Pki(dir)`` writes: ``ca.pem`` (the CA servers and clients trust), ``server.pem``
+ ``server.key`` (localhost and 127.0.0.1, key encrypted with ``KEY_PASSWORD``),
``server-bundle.pem`` (cert + clear key in one file), ``server.p12`` (PKCS#12),
``client-<cn>.pem`` with its key inside, ``expired.pem``/``expired.key``,
``chained.pem``/``chained.key`` signed by ``intermediate.pem``, and an
``other-ca.pem`` nobody signed with.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

KEY_PASSWORD = "srvpw"


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca.cert_pem.write_to_path(str(self.path("ca.pem")))
        trustme.CA().cert_pem.write_to_path(str(self.path("other-ca.pem")))
        leaf = self.ca.issue_cert("localhost", "127.0.0.1", common_name="EMSFAST-TEST")
        self.server_cert = leaf
        self.path("server.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
        self.path("server.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))
        self.path("server-bundle.pem").write_bytes(
            leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes())
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
        self.path("server.p12").write_bytes(pkcs12.serialize_key_and_certificates(
            b"server", key, cert, None,  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
        old = self.ca.issue_cert("localhost", "127.0.0.1", not_before=past - datetime.timedelta(
            days=30), not_after=past)
        self.path("expired.pem").write_bytes(old.cert_chain_pems[0].bytes())
        self.path("expired.key").write_bytes(old.private_key_pem.bytes())
        other = trustme.CA().issue_cert("localhost", "127.0.0.1")
        self.path("untrusted.pem").write_bytes(other.cert_chain_pems[0].bytes())
        self.path("untrusted.key").write_bytes(other.private_key_pem.bytes())
        self.path("notpem.pem").write_text("this is not a certificate\n")
        # Signed by an intermediate CA: peers trusting ca.pem need the issuer chain.
        child = self.ca.create_child_ca()
        chained = child.issue_cert("localhost", "127.0.0.1")
        self.path("chained.pem").write_bytes(chained.cert_chain_pems[0].bytes())
        self.path("chained.key").write_bytes(chained.private_key_pem.bytes())
        child.cert_pem.write_to_path(str(self.path("intermediate.pem")))

    def path(self, name: str) -> Path:
        return self.root / name

    def s(self, name: str) -> str:
        return str(self.path(name))

    def client(self, cn: str) -> str:
        """A client certificate with CN ``cn`` and its clear key in one PEM file."""
        path = self.path(f"client-{cn}.pem")
        if not path.exists():
            leaf = self.ca.issue_cert(f"{cn}.clients.test", common_name=cn)
            path.write_bytes(leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes())
        return str(path)

    def server_params(self, **extra: str) -> dict[str, str]:
        """tibemsd.conf parameters for a tcp:// and an ssl:// listener."""
        params = {
            "listen": "tcp://127.0.0.1:0,ssl://127.0.0.1:0",
            "ssl_server_identity": self.s("server.pem"),
            "ssl_server_key": self.s("server.key"),
            "ssl_password": KEY_PASSWORD,
            "ssl_server_trusted": self.s("ca.pem"),
        }
        params.update(extra)
        return params
