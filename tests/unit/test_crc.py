"""CRC32C (csrc/crc32c.c through emsfast._core.crc)."""

import pytest

from emsfast._core.crc import crc32c


def _bitwise(data: bytes, crc: int = 0) -> int:
    """Bit-at-a-time CRC32C straight from the definition."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (b"123456789", 0xE3069283),
        # RFC 3720 (iSCSI) appendix B.4.
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_known_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected


def test_every_length_and_alignment_matches_bitwise() -> None:
    data = bytes((i * 37 + 11) & 0xFF for i in range(80))
    for start in range(9):
        for end in range(start, len(data) + 1):
            chunk = memoryview(data)[start:end]
            assert crc32c(chunk) == _bitwise(bytes(chunk)), (start, end)


def test_chaining_equals_whole() -> None:
    data = bytes(range(256)) * 5
    for cut in (0, 1, 7, 8, 9, 100, len(data)):
        assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)
    assert crc32c(b"9", _bitwise(b"12345678")) == 0xE3069283


def test_large_buffer_released_gil_path() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: above the no-GIL threshold
    whole = crc32c(data)
    half = len(data) // 2
    assert crc32c(data[half:], crc32c(data[:half])) == whole
    assert crc32c(bytearray(data)) == whole


def test_buffer_types() -> None:
    assert crc32c(bytearray(b"123456789")) == 0xE3069283
    assert crc32c(memoryview(b"x123456789")[1:]) == 0xE3069283


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        crc32c("123456789")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        crc32c(b"", -1)
    with pytest.raises(OverflowError):
        crc32c(b"", 1 << 32)
