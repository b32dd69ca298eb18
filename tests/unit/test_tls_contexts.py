"""Certificate loading and TLS contexts (emsfast/tls.py, emsfast/server/tls.py): no sockets."""

from __future__ import annotations

import dataclasses
import os
import ssl
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from emsfast.cli import produce
from emsfast.cli.admin import build_parser as admin_parser
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.config.urls import parse_url
from emsfast.errors import ConfigError
from emsfast.server.tls import (
    certificate_fingerprints,
    check_ft_tls,
    ft_client_context,
    ft_server_hostname,
    server_context,
    use_cert_username,
)
from emsfast.tls import client_context, common_name, fingerprint, load_identity, tls_hint

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tls_pki import KEY_PASSWORD, Pki  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def ident(pki, identity, key="", password=""):
    return load_identity(pki.s(identity), pki.s(key) if key else "", password, (),
                         "ssl_server_identity", "ssl_server_key")


def test_identity_formats(pki):
    pem = ident(pki, "server.pem", "server.key", KEY_PASSWORD)
    bundle = ident(pki, "server-bundle.pem")
    p12 = ident(pki, "server.p12", password=KEY_PASSWORD)
    der_path = pki.path("server.der")
    der_path.write_bytes(pem.cert.public_bytes(serialization.Encoding.DER))
    der = ident(pki, "server.der", "server.key", KEY_PASSWORD)
    assert pem.cert == bundle.cert == p12.cert == der.cert
    assert pem.warnings == []


@pytest.mark.parametrize(("identity", "key", "password", "text"), [
    ("missing.pem", "", "", "ssl_server_identity {d}/missing.pem: file not found"),
    ("notpem.pem", "", "", "ssl_server_identity {d}/notpem.pem: not a PEM or DER certificate"),
    ("server.pem", "server.key", "wrong", "ssl_server_key {d}/server.key: wrong password"),
    ("server.pem", "server.key", "", "ssl_server_key {d}/server.key: private key is encrypted"),
    ("server.pem", "notpem.pem", "", "ssl_server_key {d}/notpem.pem: not a PEM or DER"),
    ("server.pem", "untrusted.key", "", "private key {d}/untrusted.key does not match "
                                        "certificate {d}/server.pem"),
    ("server.pem", "", "", "no private key in the file and ssl_server_key is not set"),
    ("server.p12", "", "wrong", "cannot open the PKCS#12 file"),
])
def test_identity_errors_name_the_file(pki, identity, key, password, text):
    with pytest.raises(ConfigError) as info:
        ident(pki, identity, key, password)
    assert text.format(d=pki.root) in str(info.value)


def test_expired_certificate_warns(pki):
    expired = ident(pki, "expired.pem", "expired.key")
    assert len(expired.warnings) == 1 and "certificate expired on" in expired.warnings[0]


def config(pki, **params) -> TibemsdConfig:
    base = {"ssl_server_identity": pki.s("server.pem"), "ssl_server_key": pki.s("server.key"),
            "ssl_password": KEY_PASSWORD}
    base.update(params)
    return dataclasses.replace(TibemsdConfig(), **base)


def test_server_context(pki):
    ctx, warnings = server_context(config(pki))
    assert warnings == [] and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE
    ctx, _ = server_context(config(pki, ssl_server_trusted=[pki.s("ca.pem")]))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    ctx, _ = server_context(config(pki, ssl_server_trusted=[pki.s("ca.pem")],
                                   ssl_require_client_cert="enabled"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    ctx, _ = server_context(config(pki, ssl_server_ciphers="ECDHE+AESGCM"))
    assert all("GCM" in c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2")


@pytest.mark.parametrize(("params", "text"), [
    ({"ssl_server_identity": ""}, "ssl_server_identity: required for ssl:// listeners"),
    ({"ssl_require_client_cert": "enabled"}, "ssl_server_trusted names no CA"),
    ({"ssl_require_client_cert": "maybe"}, "ssl_require_client_cert: expected enabled"),
    ({"ssl_server_ciphers": "NO-SUCH-CIPHER"}, "ssl_server_ciphers: no cipher suite matches"),
    ({"ssl_server_trusted": ["/nope/ca.pem"]}, "ssl_server_trusted /nope/ca.pem: file not"),
])
def test_server_context_errors(pki, params, text):
    with pytest.raises(ConfigError, match=text):
        server_context(config(pki, **params))


def test_ft_client_context(pki):
    cfg = config(pki, ft_ssl_identity=pki.client("EMSFAST-TEST"),
                 ft_ssl_trusted=[pki.s("ca.pem")])
    ctx = ft_client_context(cfg)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    ctx = ft_client_context(dataclasses.replace(cfg, ft_ssl_verify_hostname="disabled"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    ctx = ft_client_context(dataclasses.replace(cfg, ft_ssl_verify_host="disabled"))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    url = parse_url("ssl://peer.example:7243")
    assert ft_server_hostname(cfg, url) == "peer.example"
    assert ft_server_hostname(dataclasses.replace(cfg, ft_ssl_expected_hostname="ems"),
                              url) == "ems"
    with pytest.raises(ConfigError, match="ft_ssl_private_key .*wrong password"):
        ft_client_context(dataclasses.replace(
            cfg, ft_ssl_identity=pki.s("server.pem"), ft_ssl_private_key=pki.s("server.key"),
            ft_ssl_password="bad"))
    with pytest.raises(ConfigError, match="ft_ssl_trusted .*file not found"):
        ft_client_context(dataclasses.replace(cfg, ft_ssl_trusted=["/nope.pem"]))
    with pytest.raises(ConfigError, match="ft_ssl_ciphers"):
        ft_client_context(dataclasses.replace(cfg, ft_ssl_ciphers="NOPE"))


def test_certificate_fingerprints(pki):
    cfg = config(pki)
    prints = certificate_fingerprints(cfg)
    cert = x509.load_pem_x509_certificate(pki.path("server.pem").read_bytes())
    assert prints == {"ssl_server_identity": fingerprint(cert)}
    assert prints["ssl_server_identity"].startswith("SHA256:") and \
        len(prints["ssl_server_identity"]) == len("SHA256:") + 32 * 3 - 1
    assert certificate_fingerprints(TibemsdConfig()) == {}
    same = certificate_fingerprints(config(pki, ssl_server_identity=pki.s("server.p12"),
                                           ssl_server_key=""))
    assert same == prints


def test_common_name_and_cert_user_rules(pki):
    with open(pki.client("alice"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert common_name(cert.public_bytes(serialization.Encoding.DER)) == "alice"
    assert common_name(b"junk") is None
    plain = TibemsdConfig()
    assert not use_cert_username(plain, "bob")
    assert use_cert_username(plain, "CERTIFICATE_USER")
    assert use_cert_username(dataclasses.replace(plain, ssl_use_cert_username="yes"), "bob")


def test_client_context_options(pki):
    ctx = client_context(trusted=[pki.s("ca.pem")])
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert not client_context(trusted=[pki.s("ca.pem")], verify_hostname=False).check_hostname
    with pytest.raises(ConfigError, match="ssl_key .*given without ssl_identity"):
        client_context(key=pki.s("server.key"))
    with pytest.raises(ConfigError, match="ssl_identity .*notpem.pem"):
        client_context(identity=pki.s("notpem.pem"))


def test_handshake_hints():
    assert "does not speak TLS" in tls_hint(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] x"))
    assert "closed the connection" in tls_hint(ConnectionResetError())
    assert "requires a client certificate" in tls_hint(
        ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] x"))


def test_cli_ssl_options():
    args = produce.parse_args(["-queue", "q", "-ssl_trusted", "a.pem", "-ssl_trusted", "b.pem",
                               "-ssl_identity", "me.p12", "-ssl_password", "pw",
                               "-ssl_hostname", "ems", "-ssl_noverifyhostname", "x"])
    from emsfast.cli import ssl_options

    assert ssl_options(args) == {
        "ssl_trusted": ["a.pem", "b.pem"], "ssl_identity": "me.p12", "ssl_key": "",
        "ssl_password": "pw", "ssl_hostname": "ems", "ssl_verify_hostname": False}
    admin = admin_parser().parse_args(["-ssl_key", "k.pem"])
    assert ssl_options(admin)["ssl_key"] == "k.pem"


def test_check_ft_tls(pki):
    assert check_ft_tls(TibemsdConfig()) == []
    half = dataclasses.replace(TibemsdConfig(), ft_active="ssl://peer:7243",
                               source={"ft_active": ("tibemsd.conf", 7)})
    warnings = check_ft_tls(half)
    assert len(warnings) == 3 and all(w.startswith("tibemsd.conf:7: ft_active") for w in warnings)
    whole = dataclasses.replace(half, ft_ssl_trusted=["ca.pem"], ft_ssl_identity="me.pem",
                                listen=["ssl://0.0.0.0:7243"])
    assert check_ft_tls(whole) == []
