"""The native core is always compiled; there is no pure-Python fallback."""

import importlib.machinery

import emsfast._core
from emsfast._core import crc, framing, message


def test_compiled_flag() -> None:
    assert emsfast._core.COMPILED is True


def test_modules_are_extensions() -> None:
    for mod in (crc, framing, message):
        assert mod.__file__ is not None
        assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__
