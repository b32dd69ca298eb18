"""TLS against real daemons: ssl:// listeners beside tcp://, client certificates,
certificate user names, bad files and bad peers (issue 11).

Certificates are made per module by trustme (tests/tls_pki.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
import time

import pytest

import emsfast
import emsfast.blocking
from emsfast._testbase.clientutil import connection
from emsfast._testbase.server_process import free_port_closed, run_cli
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.config.urls import parse_url
from emsfast.errors import AuthError, ConnectionClosedError, NotAllowedError
from emsfast.server.tls import ft_client_context, ft_server_hostname

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tls_pki import KEY_PASSWORD, Pki  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(module_server_factory, pki):
    """tcp:// and ssl:// side by side; client certificates optional."""
    return module_server_factory(params=pki.server_params(handshake_timeout="1"))


def tls(pki, **extra):
    return {"ssl_trusted": pki.s("ca.pem"), "connect_attempt_count": 1, **extra}


async def test_handshake_and_messages_over_tls(server, pki, uniq):
    assert server.ssl_port is not None and server.tcp_port is not None
    assert f"Accepting connections on ssl://127.0.0.1/127.0.0.1:{server.ssl_port}." \
        in server.log_text()
    q = emsfast.Queue(uniq("tls"))
    async with connection(server.ssl_url, **tls(pki)) as conn:
        session = conn.session()
        await session.producer(q).send(emsfast.TextMessage("over tls"))
        msg = await session.consumer(q).receive(timeout=5)
        assert msg is not None and msg.text == "over tls"
    # The same broker behind both listeners.
    async with connection(server.url) as conn:
        await conn.ping()


async def test_untrusted_server_certificate(server, pki):
    with pytest.raises(ConnectionClosedError, match="not trusted"):
        await emsfast.connect(server.ssl_url, **tls(pki, ssl_trusted=pki.s("other-ca.pem")))


async def test_wrong_host_name_and_expected_host_name(server, pki):
    with pytest.raises(ConnectionClosedError, match="does not name this host"):
        await emsfast.connect(server.ssl_url, **tls(pki, ssl_hostname="wrong.example"))
    # Dialled by address, checked against the name the certificate carries.
    async with connection(server.ssl_url, **tls(pki, ssl_hostname="localhost")) as conn:
        await conn.ping()
    async with connection(server.ssl_url, **tls(pki, ssl_hostname="wrong.example",
                                                ssl_verify_hostname=False)) as conn:
        await conn.ping()


async def test_url_list_failover_over_tls(server, pki):
    urls = f"ssl://127.0.0.1:{free_port_closed()},{server.ssl_url}"
    async with connection(urls, **tls(pki)) as conn:
        assert conn.url == server.ssl_url


async def test_plain_client_on_tls_port_and_tls_client_on_plain_port(server, pki):
    with pytest.raises(ConnectionClosedError, match="ssl:// listener"):
        await emsfast.connect(f"tcp://127.0.0.1:{server.ssl_port}", connect_attempt_count=1)
    with pytest.raises(ConnectionClosedError, match="does not speak TLS"):
        await emsfast.connect(f"ssl://127.0.0.1:{server.tcp_port}", **tls(pki))
    server.wait_for_line("a tcp:// client on an ssl:// port", 5)
    server.wait_for_line("TLS handshake on a plain tcp:// listener", 5)
    async with connection(server.ssl_url, **tls(pki)) as conn:  # both listeners still serve
        await conn.ping()
    async with connection(server.url) as conn:
        await conn.ping()


async def test_stalled_handshake_is_dropped(server, pki):
    loop = asyncio.get_running_loop()
    stalled = socket.create_connection(("127.0.0.1", server.ssl_port))
    try:
        async with connection(server.ssl_url, **tls(pki)) as conn:  # served meanwhile
            await conn.ping()
        stalled.settimeout(5)
        assert await loop.run_in_executor(None, stalled.recv, 10) == b""  # closed by server
    finally:
        stalled.close()
    server.wait_for_line("TLS handshake not completed within handshake_timeout", 5)


async def test_client_certificate_optional_is_still_verified(server, pki):
    async with connection(server.ssl_url, **tls(pki, ssl_identity=pki.client("carol"))) as c:
        await c.ping()
    bad = {"ssl_identity": pki.s("untrusted.pem"), "ssl_key": pki.s("untrusted.key")}
    with pytest.raises(ConnectionClosedError, match="TLS"):
        async with connection(server.ssl_url, **tls(pki, **bad)) as conn:
            await conn.ping()


async def test_client_certificate_required(server_factory, pki):
    srv = server_factory(params=pki.server_params(ssl_require_client_cert="enabled"))
    with pytest.raises(ConnectionClosedError, match="TLS"):
        async with connection(srv.ssl_url, **tls(pki)) as conn:
            await conn.ping()
    async with connection(srv.ssl_url, **tls(pki, ssl_identity=pki.client("dave"))) as conn:
        await conn.ping()
    srv.wait_for_line("connect failed: TLS handshake failed", 5)


async def test_ft_initiator_context_against_a_peer_listener(server_factory, pki):
    """What the FT link does: dial the peer's ssl:// listen URL with ft_ssl_* settings."""
    srv = server_factory(params=pki.server_params(ssl_require_client_cert="enabled"))
    trusted = dataclasses.replace(
        TibemsdConfig(), ft_ssl_identity=pki.s("server.pem"), ft_ssl_private_key=pki.s(
            "server.key"), ft_ssl_password=KEY_PASSWORD, ft_ssl_trusted=[pki.s("ca.pem")],
        ft_ssl_expected_hostname="localhost")
    url = parse_url(srv.ssl_url)
    async with connection(srv.ssl_url, ssl_context=ft_client_context(trusted),
                          ssl_hostname=ft_server_hostname(trusted, url)) as conn:
        await conn.ping()
    untrusted = dataclasses.replace(trusted, ft_ssl_identity=pki.s("untrusted.pem"),
                                    ft_ssl_private_key=pki.s("untrusted.key"), ft_ssl_password="")
    with pytest.raises(ConnectionClosedError, match="TLS"):
        async with connection(srv.ssl_url, ssl_context=ft_client_context(untrusted),
                              connect_attempt_count=1) as conn:
            await conn.ping()
    srv.wait_for_line("connect failed: TLS handshake failed", 5)


USERS = "alice:secret:\"cert user\"\nbob:secret:\n"
ACL = "QUEUE=sec.>  USER=alice  PERM=send,receive\n"


async def test_certificate_cn_is_the_user_name(server_factory, pki, uniq):
    srv = server_factory(start=False, queues=">\nsec.>  secure\n", params=pki.server_params(
        authorization="enabled", ssl_require_client_cert="enabled",
        ssl_use_cert_username="enabled"))
    srv.workdir.joinpath("users.conf").write_text(USERS)
    srv.workdir.joinpath("acl.conf").write_text(ACL)
    srv.start()
    q = emsfast.Queue(uniq("sec.q"))
    # No password: the verified certificate names alice, who may send to sec.>.
    async with connection(srv.ssl_url, user="whoever", **tls(
            pki, ssl_identity=pki.client("alice"))) as conn:
        await conn.session().producer(q).send(emsfast.TextMessage("by cert"))
    async with connection(srv.ssl_url, **tls(pki, ssl_identity=pki.client("bob"))) as conn:
        with pytest.raises(NotAllowedError, match="user 'bob'"):
            await conn.session().producer(q).send(emsfast.TextMessage("no"))
    with pytest.raises(AuthError, match="mallory"):
        await emsfast.connect(srv.ssl_url, **tls(pki, ssl_identity=pki.client("mallory")))


async def test_expired_server_certificate(server_factory, pki):
    srv = server_factory(params=pki.server_params(
        ssl_server_identity=pki.s("expired.pem"), ssl_server_key=pki.s("expired.key"),
        ssl_password=""))
    assert "certificate expired on" in srv.log_text()
    with pytest.raises(ConnectionClosedError, match="expired"):
        await emsfast.connect(srv.ssl_url, **tls(pki))


async def test_issuer_chain_is_sent(server_factory, pki):
    chained = {"ssl_server_identity": pki.s("chained.pem"),
               "ssl_server_key": pki.s("chained.key"), "ssl_password": ""}
    srv = server_factory(params=pki.server_params(
        ssl_server_issuer=pki.s("intermediate.pem"), **chained))
    async with connection(srv.ssl_url, **tls(pki)) as conn:  # trusts the root only
        await conn.ping()
    bare = server_factory(params=pki.server_params(**chained))
    with pytest.raises(ConnectionClosedError, match="not trusted"):
        await emsfast.connect(bare.ssl_url, **tls(pki))


def _failed_start(server_factory, **params):
    srv = server_factory(start=False, params=params)
    srv.start(wait_ready=False)
    rc = srv.wait(20)
    return rc, srv.log_text()


def test_bad_files_abort_with_startup_abort_list_ssl(server_factory, pki):
    abort = {"startup_abort_list": "SSL"}
    rc, log = _failed_start(server_factory, **pki.server_params(ssl_password="nope", **abort))
    assert rc == 1 and f"ssl_server_key {pki.s('server.key')}: wrong password" in log
    missing = pki.s("missing.pem")
    rc, log = _failed_start(server_factory,
                            **pki.server_params(ssl_server_identity=missing, **abort))
    assert rc == 1 and f"{missing}: file not found" in log
    rc, log = _failed_start(server_factory, **pki.server_params(
        ssl_server_identity=pki.s("notpem.pem"), **abort))
    assert rc == 1 and "not a PEM or DER certificate" in log
    rc, log = _failed_start(server_factory, **pki.server_params(
        ssl_server_key=pki.s("untrusted.key"), ssl_password="", **abort))
    assert rc == 1 and "does not match certificate" in log


def test_bad_files_without_abort_skip_the_ssl_listener(server_factory, pki):
    srv = server_factory(params=pki.server_params(ssl_password="nope"))
    log = srv.log_text()
    assert "ERROR: TLS initialisation failed" in log and "wrong password" in log
    assert "Not listening on ssl://127.0.0.1:0" in log
    assert srv.tcp_port is not None and srv.ssl_port is None


def test_password_on_the_command_line(server_factory, pki):
    srv = server_factory(start=False, params=pki.server_params(ssl_password="nope"),
                         args=["-ssl_password", KEY_PASSWORD])
    srv.start()
    assert srv.ssl_port is not None


def test_blocking_client_over_tls(server, pki, uniq):
    q = emsfast.Queue(uniq("blocking"))
    with emsfast.blocking.connect(server.ssl_url, ssl_trusted=[pki.s("ca.pem")],
                                  ssl_hostname="localhost") as conn:
        session = conn.session()
        session.producer(q).send(emsfast.TextMessage("sync tls"))
        msg = session.consumer(q).receive(timeout=5)
        assert msg is not None and msg.text == "sync tls"


def test_cli_tools_over_tls(server, pki, tmp_path, uniq):
    q = uniq("cli")
    opts = ["-server", server.ssl_url, "-ssl_trusted", pki.s("ca.pem")]
    rc, _, err = run_cli("produce", [*opts, "-queue", q, "one", "two"])
    assert rc == 0, err
    rc, out, err = run_cli("consume", [*opts, "-queue", q, "-count", "2", "-timeout", "5"])
    assert rc == 0 and out.splitlines() == ["one", "two"], err
    rc, _, err = run_cli("produce", ["-server", server.ssl_url, "-ssl_trusted", pki.s("ca.pem"),
                                     "-ssl_hostname", "wrong.example", "-queue", q, "x"])
    assert rc == 1 and "does not name this host" in err
    rc, _, err = run_cli("produce", [*opts, "-ssl_hostname", "wrong.example",
                                     "-ssl_noverifyhostname", "-queue", q, "y"])
    assert rc == 0, err
    rc, _, err = run_cli("produce", ["-server", server.ssl_url, "-ssl_trusted",
                                     pki.s("missing.pem"), "-queue", q, "z"])
    assert rc == 1 and "missing.pem: file not found" in err
    script = tmp_path / "admin.txt"
    script.write_text("show server\n")
    rc, out, err = run_cli("admin", [*opts, "-user", "admin", "-password", "",
                                     "-script", str(script)])
    assert rc == 0 and "show server" in out, err
    rc, _, err = run_cli("admin", ["-server", server.ssl_url, "-user", "admin",
                                   "-ssl_trusted", pki.s("other-ca.pem")])
    assert rc == 1 and "not trusted" in err


def test_tls_listener_keeps_serving_after_many_bad_peers(server, pki):
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.ssl_port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rc, _, err = run_cli("produce", ["-server", server.ssl_url, "-ssl_trusted",
                                         pki.s("ca.pem"), "-queue", "tls.after.bad", "ok"])
        if rc == 0:
            break
    assert rc == 0, err
