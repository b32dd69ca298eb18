"""Frame codec: incremental decoder and batching encoder (docs/protocol.md §1, §3)."""

class FrameDecoder:
    """Fed arbitrary chunks, returns every complete frame in order.

    Raises ``emsfast.errors.FrameError`` on an oversized length, an unknown type or
    a non-zero reserved field; after that the decoder is unusable.
    """

    max_frame: int
    def __init__(self, max_frame: int) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, int, bytes]]:
        """Buffer ``data`` and return ``[(type, flags, body), ...]`` for each complete frame."""
    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
    def check_eof(self) -> None:
        """Raise FrameError if the stream ended inside a frame."""

class FrameEncoder:
    """Appends frames into one growing buffer; ``take()`` returns and resets it."""

    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def raw(self, ftype: int, flags: int, body: bytes) -> None: ...
    def control(self, ftype: int, obj: object) -> None:
        """Append a frame whose body is ``msgpack.packb(obj)``."""
    def publish(self, producer: int, seq: int, flags: int, blob: bytes) -> None: ...
    def deliver(self, consumer: int, delivery_count: int, tag: int, message_id: int,
                blob: bytes) -> None: ...
    def confirm(self, producer: int, pairs: list[tuple[int, int]]) -> None:
        """One CONFIRM frame for ``[(seq, message_id), ...]``."""
    def send_fail(self, producer: int, seq: int, code: int, text: str) -> None: ...
    def credit(self, consumer: int, n: int) -> None: ...
    def ack(self, session: int, tags: list[int]) -> None: ...
    def heartbeat(self) -> None: ...
    def take(self) -> bytes:
        """Return everything appended since the last take and empty the buffer."""

def unpack_control(body: bytes) -> dict[str, object]:
    """Decode a msgpack control body; FrameError unless it is a map."""

def parse_publish(body: bytes) -> tuple[int, int, bytes]:
    """(producer, seq, blob)"""

def parse_deliver(body: bytes) -> tuple[int, int, int, int, bytes]:
    """(consumer, delivery_count, tag, message_id, blob)"""

def parse_confirm(body: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(producer, [(seq, message_id), ...])"""

def parse_send_fail(body: bytes) -> tuple[int, int, int, str]:
    """(producer, seq, code, text)"""

def parse_credit(body: bytes) -> tuple[int, int]:
    """(consumer, n)"""

def parse_ack(body: bytes) -> tuple[int, list[int]]:
    """(session, [tag, ...])"""
