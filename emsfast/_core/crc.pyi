"""CRC32C (Castagnoli) checksum (csrc/crc32c.c)."""

def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` continued from ``crc``; ``crc32c(b, crc32c(a)) == crc32c(a + b)``."""
