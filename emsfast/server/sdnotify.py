"""systemd's readiness protocol (``Type=notify``) without libsystemd.

One datagram of ``KEY=VALUE`` lines to the unix socket named by ``NOTIFY_SOCKET``
(sd_notify(3)); a leading ``@`` names an abstract socket. Without the variable
(not under systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket

from emsfast.log import log


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``); True if a notify socket took it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # A datagram to a local socket either goes at once or fails at once.
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning(f"systemd notify ({state.splitlines()[0]}) failed: {exc}")
        return False
    return True
