"""Store record codec: round trips, CRC over key and payload, clear errors."""

from __future__ import annotations

import pytest

from emsfast._core import storeenc
from emsfast.errors import StoreError


def test_round_trip_and_key_order() -> None:
    key = storeenc.message_key("q:orders", 42)
    rec = storeenc.encode_record(storeenc.MESSAGE, key, b"body")
    assert rec[0] == storeenc.FORMAT_VERSION
    assert storeenc.decode_record("s", key, rec) == (storeenc.MESSAGE, b"body")
    assert storeenc.split_message_key(key) == ("q:orders", 42)
    keys = [storeenc.message_key("q:a", i) for i in (300, 2, 256, 1)]
    assert [storeenc.split_message_key(k)[1] for k in sorted(keys)] == [1, 2, 256, 300]
    assert all(k.startswith(storeenc.holder_prefix("q:a")) for k in keys)
    assert not storeenc.message_key("q:ab", 1).startswith(storeenc.holder_prefix("q:a"))


@pytest.mark.parametrize("offset", [0, 1, 2, 5, 6, 9])
def test_any_flipped_byte_is_reported_with_store_and_key(offset: int) -> None:
    key = storeenc.message_key("q:orders", 7)
    rec = bytearray(storeenc.encode_record(storeenc.MESSAGE, key, b"abcd"))
    rec[offset] ^= 0x01
    with pytest.raises(StoreError) as info:
        storeenc.decode_record("$sys.failsafe", key, bytes(rec))
    text = str(info.value)
    assert "store '$sys.failsafe'" in text and "q:orders/7" in text


def test_record_under_another_key_fails() -> None:
    rec = storeenc.encode_record(storeenc.MESSAGE, storeenc.message_key("q:a", 1), b"x")
    with pytest.raises(StoreError, match="CRC mismatch"):
        storeenc.decode_record("s", storeenc.message_key("q:a", 2), rec)


def test_newer_version_and_short_record() -> None:
    key = b"k"
    rec = bytearray(storeenc.encode_record(storeenc.EPOCH, key, b""))
    rec[0] = storeenc.FORMAT_VERSION + 1
    with pytest.raises(StoreError, match="format version"):
        storeenc.decode_record("s", key, bytes(rec))
    with pytest.raises(StoreError, match="shorter"):
        storeenc.decode_record("s", key, b"\x01\x01")


def _blob(n: int) -> bytes:
    import emsfast
    from emsfast.consts import PERSISTENT

    return bytes(emsfast.BytesMessage(bytes([n])).encode(PERSISTENT, n % 10, 1000 + n, 0,
                                                         emsfast.Queue("q")))


def test_scan_builds_an_index_without_bodies() -> None:
    keys = [storeenc.message_key(h, i) for h, i in [("q:a", 1), ("q:a", 5), ("d:c:s", 2)]]
    pairs = [(k, storeenc.encode_record(storeenc.MESSAGE, k, _blob(i)))
             for k, i in zip(keys, (1, 5, 2), strict=True)]
    it = iter(pairs)
    first = storeenc.scan_messages("s", it, 2, lambda *a: a, {("q:a", 5): 3})
    rest = storeenc.scan_messages("s", it, 2, lambda *a: a, {})
    assert first == [("q:a", 1, None, 0, len(_blob(1)), 2, 1, 1001, 0),
                     ("q:a", 5, None, 3, len(_blob(5)), 2, 5, 1005, 0)]
    assert [r[:2] for r in rest] == [("d:c:s", 2)]
    assert storeenc.scan_messages("s", it, 2, lambda *a: a, {}) == []


def test_scan_reports_a_bad_message_header() -> None:
    key = storeenc.message_key("q:a", 9)
    rec = storeenc.encode_record(storeenc.MESSAGE, key, b"not a message")
    with pytest.raises(StoreError, match="q:a/9: bad message"):
        storeenc.scan_messages("s", iter([(key, rec)]), 10, tuple, {})
