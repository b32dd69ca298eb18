"""Native core: Cython frame and message codecs. No sockets, no files.

There is no pure-Python fallback: a missing build is an ImportError that says how
to build, so a broken install can never run silently slower.
"""

try:
    from emsfast._core import crc, dispatch, framing, message, storeenc  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        f"emsfast native core not built ({exc}); run 'pip install .' (or 'make test') "
        "from the source tree, which compiles emsfast/_core/*.pyx with Cython and a C compiler"
    ) from exc

COMPILED = True

__all__ = ["COMPILED", "crc", "dispatch", "framing", "message", "storeenc"]
