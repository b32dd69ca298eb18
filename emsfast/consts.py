"""Protocol and messaging constants, mirrored by ``emsfast/_core/consts.pxi``.

A unit test keeps the two files equal; docs/protocol.md explains each value.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
HELLO_MAGIC = "EMSF"

FRAME_HEADER_LEN = 8
# A peer that has not logged in may send at most this much per frame: enough for
# HELLO with a long password, small enough that a stranger cannot make us allocate.
# Also the default of max_preauth_bytes, the server's budget for all bytes before login.
PREAUTH_MAX_FRAME = 64 * 1024
# Bytes a PUBLISH/DELIVER frame adds around the message blob, plus headroom for meta.
FRAME_OVERHEAD = 64 * 1024
# EMS's own ceiling on a message (EMS.md 5.10); max_msg_size=0 means this.
MAX_MSG_SIZE_CEILING = 512 * 1024 * 1024

# Frame types.
FRAME_HELLO = 0x01
FRAME_WELCOME = 0x02
FRAME_REFUSED = 0x03
FRAME_REQUEST = 0x10
FRAME_REPLY = 0x11
FRAME_ERROR = 0x12
FRAME_PUBLISH = 0x20
FRAME_CONFIRM = 0x21
FRAME_SEND_FAIL = 0x22
FRAME_DELIVER = 0x30
FRAME_CREDIT = 0x31
FRAME_ACK = 0x32
FRAME_HEARTBEAT = 0x40

FRAME_TYPES = frozenset(
    {
        FRAME_HELLO, FRAME_WELCOME, FRAME_REFUSED, FRAME_REQUEST, FRAME_REPLY,
        FRAME_ERROR, FRAME_PUBLISH, FRAME_CONFIRM, FRAME_SEND_FAIL, FRAME_DELIVER,
        FRAME_CREDIT, FRAME_ACK, FRAME_HEARTBEAT,
    }
)

# PUBLISH flags.
PUBLISH_CONFIRM = 0x01      # the producer waits for CONFIRM or SEND_FAIL

# Message blob.
MSG_HEADER_LEN = 24
BODY_MESSAGE = 0
BODY_TEXT = 1
BODY_BYTES = 2
BODY_MAP = 3
BODY_STREAM = 4
# Map and Stream bodies may nest maps and lists this deep (the body itself is
# level 1): deep enough for real documents, shallow enough that decoding and
# walking a hostile body stays cheap (DESIGN.md §7).
MAX_NESTING_DEPTH = 32
# Default max_selector_length: untrusted clients send selectors, capped before any
# parsing work; long enough for an IN list of a few hundred short values.
MAX_SELECTOR_LENGTH = 4096
# Default max_client_pending_bytes: output a connection may leave unread before the
# server closes it. Above a topic prefetch (64) of 1MB messages in flight at once.
MAX_CLIENT_PENDING_BYTES = 64 * 1024 * 1024

# JMS / EMS delivery modes (EMS.md 5.5).
NON_PERSISTENT = 1
PERSISTENT = 2
RELIABLE = 22

# Acknowledge modes (EMS.md 5.6).
ACK_TRANSACTED = 0
ACK_AUTO = 1
ACK_CLIENT = 2
ACK_DUPS_OK = 3
ACK_NONE = 22
ACK_EXPLICIT = 23
ACK_EXPLICIT_DUPS_OK = 24

ACK_MODES = {
    "auto": ACK_AUTO,
    "client": ACK_CLIENT,
    "dups_ok": ACK_DUPS_OK,
    "none": ACK_NONE,
    "explicit": ACK_EXPLICIT,
    "explicit_dups_ok": ACK_EXPLICIT_DUPS_OK,
}

DELIVERY_MODES = {
    "non_persistent": NON_PERSISTENT,
    "persistent": PERSISTENT,
    "reliable": RELIABLE,
}

DEFAULT_PRIORITY = 4
# EMS defaults (EMS.md 5.4): prefetch 5 for queues, 64 for topics.
DEFAULT_QUEUE_PREFETCH = 5
DEFAULT_TOPIC_PREFETCH = 64
DEFAULT_PORT = 7222
