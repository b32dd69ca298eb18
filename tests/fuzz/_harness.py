"""Shared plumbing for the atheris harnesses (``atheris_*.py``).

Each harness defines ``test_one_input(data: bytes)``: it feeds ``data`` to one
decoder or parser and lets any exception outside that target's documented
errors escape, which atheris reports as a crash. Harnesses import without
atheris so the regression tests can replay inputs through the same checks.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def instrumented(module_name: str, *also: str) -> Iterator[None]:
    """Instrument emsfast's Python modules (and ``also``) imported in the block,
    when run as a harness rather than imported by a test.

    The Cython core is not instrumented (atheris sees only Python bytecode), so
    for it coverage comes from the Python around each call: the harness itself
    and the pure-Python reference codec, whose branches mirror the core's.
    """
    if module_name != "__main__":
        yield
        return
    import atheris

    with atheris.instrument_imports(include=["emsfast", *also]):
        yield


def named(exc: BaseException) -> None:
    """A documented error must say what was wrong; an empty message is a bug too."""
    if not str(exc).strip():
        raise AssertionError(f"{type(exc).__name__} raised with an empty message") from exc


def main(test_one_input: Callable[[bytes], None]) -> None:
    """``python atheris_<target>.py [corpus_dir ...] [-libfuzzer_flag ...]``."""
    import atheris

    module = sys.modules[test_one_input.__module__]
    for obj in vars(module).values():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            atheris.instrument_func(obj)  # patches the code object in place
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
