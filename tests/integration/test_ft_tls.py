"""The FT link over TLS (EMS.md 1.11): the member that dials ``ft_active`` uses its
``ft_ssl_*`` settings, the receiving member checks it with its own ``ssl_*``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, text_of
from emsfast._testbase.ft_pair import STANDBY_LINE, FTPair
from emsfast._testbase.server_process import run_cli

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tls_pki import KEY_PASSWORD, Pki  # noqa: E402

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def pair(tmp_path: Path, pki: Pki) -> Iterator[FTPair]:
    ft = FTPair(tmp_path / "pair", params=tls_params(pki, identity="server"))
    # Both members listen on ssl:// and dial each other's ssl:// URL.
    ft.url = lambda role: f"ssl://127.0.0.1:{ft.ports[role]}"  # type: ignore[method-assign]
    try:
        yield ft
    finally:
        ft.cleanup()


def tls_params(pki: Pki, identity: str) -> dict[str, str]:
    """Same certificates on both members (EMS requires it); the FT identity is
    ``identity`` (``server``: signed by the shared CA, ``untrusted``: not)."""
    ft_key = {"server": ("server.pem", "server.key", KEY_PASSWORD),
              "untrusted": ("untrusted.pem", "untrusted.key", "")}[identity]
    return {
        "ssl_server_identity": pki.s("server.pem"),
        "ssl_server_key": pki.s("server.key"),
        "ssl_password": KEY_PASSWORD,
        "ssl_server_trusted": pki.s("ca.pem"),
        "ssl_require_client_cert": "enabled",
        "ft_ssl_identity": pki.s(ft_key[0]),
        "ft_ssl_private_key": pki.s(ft_key[1]),
        "ft_ssl_password": ft_key[2],
        "ft_ssl_trusted": pki.s("ca.pem"),
        "ft_ssl_expected_hostname": "localhost",
    }


async def _send_and_receive(urls: str, pki: Pki, queue: str, text: str) -> str:
    # A loaded 2-core machine can take seconds for a TLS handshake: wait longer
    # than the library's defaults before calling the pair unreachable.
    async with connection(urls, ssl_trusted=pki.s("ca.pem"), ssl_identity=pki.client("app"),
                          connect_attempt_count=4, handshake_timeout=10.0) as conn:
        session = conn.session()
        await session.producer(emsfast.Queue(queue)).send(emsfast.TextMessage(text))
        consumer = session.consumer(emsfast.Queue(queue))
        while True:
            msg = await consumer.receive(timeout=10)
            assert msg is not None
            # An ack is written to the store after it is processed, so a message
            # acknowledged just before a kill -9 may come back, flagged (JMS allows it).
            if not msg.redelivered:
                return text_of(msg)


def test_trusted_backup_becomes_standby_over_tls_and_takes_over(pair: FTPair,
                                                                pki: Pki) -> None:
    active = pair.start_active("a")
    standby = pair.start_standby("b")

    def logs() -> str:
        return f"--- a ---\n{active.log_text()}\n--- b ---\n{standby.log_text()}"

    assert f"standby mode for 'ssl://127.0.0.1:{pair.ports['a']}'" in standby.log_text()
    try:
        before = asyncio.run(_send_and_receive(pair.urls, pki, "ft.tls", "before"))
    except Exception as exc:
        raise AssertionError(f"no message through the active: {exc!r}\n{logs()}") from exc
    assert before == "before"
    active.kill()
    standby.wait_for_line("Server is active.", 20)
    try:
        after = asyncio.run(_send_and_receive(pair.urls, pki, "ft.tls", "after"))
    except Exception as exc:
        raise AssertionError(f"no message through the backup: {exc!r}\n{logs()}") from exc
    assert after == "after"


def test_untrusted_backup_identity_is_refused_and_logged_on_both_sides(
        pair: FTPair, pki: Pki) -> None:
    active = pair.start_active("a")
    backup = pair.member("b", params=tls_params(pki, identity="untrusted")).start(
        wait_ready=False)
    # The receiver checks the dialler's certificate with its own ssl_server_trusted.
    active.wait_for_line("TLS handshake failed", 20)
    backup.wait_for_line("TLS", 20)
    log = backup.log_text()
    assert STANDBY_LINE not in log
    # The active still owns the store, so the refused backup can never activate.
    assert "Server is active." not in log
    assert active.is_running()


def test_admin_over_tls_to_the_standby(pair: FTPair, pki: Pki) -> None:
    pair.start_active("a")
    pair.start_standby("b")
    rc, out, err = run_cli("admin", [
        "-server", pair.url("b"), "-user", "admin", "-ssl_trusted", pki.s("ca.pem"),
        "-ssl_identity", pki.client("admin")], input="info\n")
    assert rc == 0, err
    assert "State: standby" in out
