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


def test_bulk_decode() -> None:
    pairs = [(storeenc.message_key(h, i), b"") for h, i in
             [("q:a", 1), ("q:a", 5), ("d:c:s", 2)]]
    pairs = [(k, storeenc.encode_record(storeenc.MESSAGE, k, k[-1:])) for k, _ in pairs]
    assert storeenc.decode_messages("s", pairs) == [
        ("q:a", 1, b"\x01"), ("q:a", 5, b"\x05"), ("d:c:s", 2, b"\x02")]
