"""The FaultProxy test tool itself: forward, cut, blackhole, restore."""

from __future__ import annotations

import pytest

from emsfast import consts
from emsfast._testbase.fault_proxy import FaultProxy
from emsfast._testbase.rawwire import RawConnection, hello

pytestmark = pytest.mark.timeout(60)


def test_forward_cut_blackhole_restore(server):
    with FaultProxy.in_thread("127.0.0.1", server.port) as proxy:
        # Forwarding: a login through the proxy works.
        with RawConnection("127.0.0.1", proxy.port) as conn:
            assert conn.login()["proto"] == consts.PROTOCOL_VERSION

            # cut(): the live link ends at once.
            proxy.call("cut")
            assert conn.read_until_closed(timeout=5) == []

        # While cut, new connections are dropped too.
        with RawConnection("127.0.0.1", proxy.port) as conn:
            conn.send_tolerant(hello())
            assert conn.read_until_closed(timeout=5) == []

        # blackhole(): the link stays open but nothing comes back.
        proxy.call("blackhole")
        with RawConnection("127.0.0.1", proxy.port) as conn:
            conn.send(hello())
            with pytest.raises(TimeoutError):
                conn.read_frame(timeout=0.5)

        # restore(): forwarding again.
        proxy.call("restore")
        with RawConnection("127.0.0.1", proxy.port) as conn:
            assert conn.login()["proto"] == consts.PROTOCOL_VERSION
