# Mirror of emsfast/consts.py (tests/unit/test_consts.py keeps them equal).
# Constants only: no code here.

cdef enum:
    PROTOCOL_VERSION = 1
    FRAME_HEADER_LEN = 8
    MSG_HEADER_LEN = 24

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

    PUBLISH_CONFIRM = 0x01

    BODY_MESSAGE = 0
    BODY_TEXT = 1
    BODY_BYTES = 2
    BODY_MAP = 3
    BODY_STREAM = 4

    NON_PERSISTENT = 1
    PERSISTENT = 2
    RELIABLE = 22
