"""emsfast/_core/consts.pxi must mirror emsfast/consts.py name for name."""

import re
from pathlib import Path

import emsfast
from emsfast import consts

PXI = Path(emsfast.__file__).parent / "_core" / "consts.pxi"
ENTRY = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9A-Fa-f]+|\d+)\s*$")


def _pxi_constants() -> dict[str, int]:
    found: dict[str, int] = {}
    for line in PXI.read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            name, value = match.groups()
            assert name not in found, f"{name} defined twice in consts.pxi"
            found[name] = int(value, 0)
    return found


def test_pxi_parses_to_something() -> None:
    assert len(_pxi_constants()) >= 20


def test_every_pxi_name_equals_python() -> None:
    for name, value in _pxi_constants().items():
        assert hasattr(consts, name), f"consts.pxi has {name}, emsfast/consts.py does not"
        assert getattr(consts, name) == value, f"{name}: pxi {value} != py {getattr(consts, name)}"


def test_every_frame_type_is_mirrored() -> None:
    pxi = _pxi_constants()
    types = {
        name: getattr(consts, name)
        for name in dir(consts)
        if name.startswith("FRAME_") and getattr(consts, name) in consts.FRAME_TYPES
    }
    assert set(types.values()) == set(consts.FRAME_TYPES)
    for name, value in types.items():
        assert pxi.get(name) == value, f"{name} missing from consts.pxi"


def test_pxi_holds_no_code() -> None:
    for line in PXI.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assert stripped == "cdef enum:" or ENTRY.match(line), f"unexpected line: {line!r}"
