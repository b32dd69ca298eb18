"""Certificate, key and trust files for TLS, and the contexts built from them.

Which library does what (docs/tls.md): pyOpenSSL's ``SSL.Context`` checks that a
key matches its certificate and that a cipher list means something, and the
``cryptography`` package pyOpenSSL is built on (its ``crypto`` module is
deprecated in favour of it) reads PEM, DER and PKCS#12 and decrypts keys. Every
failure is a ``ConfigError`` naming the file. The checked objects are then handed
to a stdlib ``ssl.SSLContext``, the only context asyncio and uvloop transports
accept, which carries the bytes. Shared by the server (``ssl_*``), the FT link
(``ft_ssl_*``) and the client library.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from OpenSSL import SSL

from emsfast.errors import ConfigError

__all__ = ["Identity", "apply_identity", "apply_trusted", "client_context", "common_name",
           "fingerprint", "load_identity", "load_trusted", "tls_hint"]

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY_MARK = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key and issuer chain, all checked."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    chain: list[x509.Certificate]
    path: str
    warnings: list[str] = field(default_factory=list)


def _fail(what: str, path: str, problem: str) -> ConfigError:
    return ConfigError(f"{what} {path}: {problem}", key=what)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise _fail(what, path, "file not found") from None
    except OSError as exc:
        raise _fail(what, path, f"cannot read: {exc.strerror}") from None


def _certificates(data: bytes, path: str, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one certificate of a DER file."""
    try:
        if _PEM_CERT in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise _fail(what, path, f"not a PEM or DER certificate ({exc})") from None


def load_certificates(path: str, what: str) -> list[x509.Certificate]:
    return _certificates(_read(path, what), path, what)


def load_trusted(paths: Sequence[str], what: str) -> list[x509.Certificate]:
    """The CA certificates of every file in ``paths`` (``ssl_server_trusted`` and kin)."""
    certs: list[x509.Certificate] = []
    for path in paths:
        certs.extend(load_certificates(path, what))
    return certs


def _private_key(data: bytes, password: str, path: str, what: str) -> PrivateKeyTypes:
    secret = password.encode("utf-8") if password else None
    try:
        if _PEM_KEY_MARK in data:
            return serialization.load_pem_private_key(data, secret)
        return serialization.load_der_private_key(data, secret)
    except TypeError:
        # cryptography's words for "encrypted but no password" / "password but clear".
        if secret is None:
            raise _fail(what, path, "private key is encrypted and no password was given "
                        "(set the password parameter or -ssl_password)") from None
        return _private_key(data, "", path, what)
    except ValueError:
        if secret is not None:
            raise _fail(what, path, "wrong password for the private key") from None
        raise _fail(what, path, "not a PEM or DER private key") from None


def load_identity(identity: str, key: str, password: str, issuers: Sequence[str],
                  what: str, key_what: str) -> Identity:
    """Read a certificate (PEM, DER or PKCS#12) and its key; check they belong together.

    ``what``/``key_what`` are the parameter names used in errors
    (``ssl_server_identity``/``ssl_server_key``).
    """
    data = _read(identity, what)
    chain: list[x509.Certificate] = []
    private: PrivateKeyTypes | None = None
    if _PEM_CERT in data or not _looks_pkcs12(data):
        certs = _certificates(data, identity, what)
        cert, chain = certs[0], certs[1:]
        if _PEM_KEY_MARK in data and not key:
            private = _private_key(data, password, identity, what)
    else:
        try:
            p12_key, p12_cert, extra = pkcs12.load_key_and_certificates(
                data, password.encode("utf-8") if password else None)
        except ValueError:
            raise _fail(what, identity, "cannot open the PKCS#12 file: wrong password or "
                        "damaged file") from None
        if p12_cert is None:
            raise _fail(what, identity, "PKCS#12 file holds no certificate")
        cert, chain = p12_cert, list(extra)
        private = p12_key if not key else None
    if key:
        private = _private_key(_read(key, key_what), password, key, key_what)
    if private is None:
        raise _fail(what, identity, f"no private key in the file and {key_what} is not set")
    for path in issuers:
        chain.extend(load_certificates(path, what.replace("identity", "issuer")))
    _check_pair(cert, private, identity, key or identity)
    warnings = []
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        warnings.append(f"{what} {identity}: certificate expired on "
                        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; peers will refuse it")
    elif cert.not_valid_before_utc > now:
        warnings.append(f"{what} {identity}: certificate is not valid before "
                        f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    return Identity(cert, private, chain, identity, warnings)


def _looks_pkcs12(data: bytes) -> bool:
    # A DER certificate and a PKCS#12 file both start with a SEQUENCE; try the cert.
    if data[:1] != b"\x30":
        return False
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return True
    return False


def _check_pair(cert: x509.Certificate, key: PrivateKeyTypes, cert_path: str,
                key_path: str) -> None:
    ctx = SSL.Context(SSL.TLS_METHOD)
    try:
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)  # type: ignore[arg-type]
        ctx.check_privatekey()
    except (SSL.Error, TypeError) as exc:
        raise ConfigError(f"private key {key_path} does not match certificate {cert_path} "
                          f"({exc})") from None


def check_ciphers(ciphers: str, what: str) -> None:
    """Refuse a cipher list OpenSSL matches nothing with (pyOpenSSL says so early)."""
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ConfigError(f"{what}: no cipher suite matches {ciphers!r} "
                          "(expected OpenSSL cipher names, e.g. ECDHE+AESGCM)",
                          key=what) from None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path holding ``data`` that only this process can read, gone afterwards.

    ``SSLContext.load_cert_chain`` reads only files; on Linux the bytes stay in
    memory (memfd), elsewhere in a private temporary directory.
    """
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("emsfast-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="emsfast-tls-") as tmp:
        path = os.path.join(tmp, "identity.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(data)
        yield path


def apply_identity(ctx: ssl.SSLContext, identity: Identity) -> None:
    """Give ``ctx`` the certificate, chain and key of ``identity``.

    The key is written re-encrypted under a one-time password, so it is never
    stored in clear, not even in memory-backed files.
    """
    once = secrets.token_urlsafe(24)
    key_pem = identity.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(once.encode("ascii")))
    blob = b"".join([_pem(identity.cert), *(_pem(c) for c in identity.chain), key_pem])
    with _private_file(blob) as path:
        try:
            ctx.load_cert_chain(path, password=once)
        except ssl.SSLError as exc:
            raise ConfigError(f"{identity.path}: the TLS library refused the certificate "
                              f"or key ({exc})") from None


def apply_trusted(ctx: ssl.SSLContext, certs: Sequence[x509.Certificate]) -> None:
    if certs:
        ctx.load_verify_locations(cadata=b"".join(_pem(c) for c in certs).decode("ascii"))


def client_context(*, trusted: Sequence[str] = (), identity: str = "", key: str = "",
                   password: str = "", issuers: Sequence[str] = (), verify_host: bool = True,
                   verify_hostname: bool = True, ciphers: str = "",
                   prefix: str = "ssl_") -> ssl.SSLContext:
    """The initiating side's context: client library (``ssl_*``) or FT link (``ft_ssl_*``).

    With ``verify_host`` the peer's certificate must chain to ``trusted`` (the
    system CAs when none is given); without, the link is encrypted but the peer
    unauthenticated, as EMS's ``ft_ssl_verify_host = disabled``.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify_host:
        if trusted:
            apply_trusted(ctx, load_trusted(trusted, f"{prefix}trusted"))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        ctx.check_hostname = verify_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if identity:
        key_what = "ft_ssl_private_key" if prefix == "ft_ssl_" else f"{prefix}key"
        ident = load_identity(identity, key, password, issuers, f"{prefix}identity", key_what)
        apply_identity(ctx, ident)
    elif key:
        raise ConfigError(f"{prefix}key {key}: given without {prefix}identity")
    if ciphers:
        check_ciphers(ciphers, f"{prefix}ciphers")
        ctx.set_ciphers(ciphers)
    return ctx


def fingerprint(cert: x509.Certificate) -> str:
    """``SHA256:AB:CD:...``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def common_name(der: bytes) -> str | None:
    """The subject CN of a DER certificate (a peer's), or None."""
    try:
        cert = x509.load_der_x509_certificate(der)
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except ValueError:
        return None
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def tls_hint(exc: BaseException) -> str:
    """A reader's explanation of a failed handshake, added to the OpenSSL text."""
    text = str(exc)
    if isinstance(exc, ConnectionResetError | BrokenPipeError) or not text or \
            "reset by peer" in text:
        return "the peer closed the connection during the handshake (it may not trust " \
               "our certificate, or not speak TLS)"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or \
            "RECORD_LAYER_FAILURE" in text or "record layer failure" in text or \
            "HTTP_REQUEST" in text or "packet length too long" in text:
        return "the peer does not speak TLS (a tcp:// client on an ssl:// port, or the reverse)"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        if "Hostname mismatch" in text or "IP address mismatch" in text:
            return "the certificate does not name this host (see ssl_hostname / " \
                   "ft_ssl_expected_hostname)"
        return "the peer's certificate is not trusted, expired or not yet valid"
    if "ALERT_CERTIFICATE_REQUIRED" in text or "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "peer did not return a certificate" \
            in text or "CERTIFICATE_REQUIRED" in text or "certificate required" in text:
        return "the server requires a client certificate (ssl_require_client_cert)"
    if "NO_SHARED_CIPHER" in text or "no shared cipher" in text or "HANDSHAKE_FAILURE" in text:
        return "no cipher suite or protocol version in common"
    if "UNKNOWN_CA" in text or "unknown ca" in text or "BAD_CERTIFICATE" in text:
        return "the peer does not trust our certificate's issuer"
    return "TLS handshake failed"
