"""Write-back of EMS configuration files that keeps comments, blank lines and order.

A ``ConfigText`` holds every line of a file (comments included). Admin changes
edit only the lines they concern, then ``save`` writes a temporary file beside
the original, fsyncs it and renames it over the original, so a crash leaves the
old file or the new one, never half of either (issue 6, "Bad input").

The helpers below edit the three line shapes EMS files use: ``name = value``
(tibemsd.conf), ``name  props`` (queues.conf/topics.conf) and the user, group and
ACL lines of ``emsfast.config.security``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable

from emsfast.config.syntax import config_error

_COMMENT_CHARS = ("#", ";")
_ASSIGN_KEY_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*=")


def is_meaningful(raw: str) -> bool:
    """False for blank and comment lines (they are kept but never edited)."""
    stripped = raw.strip()
    return bool(stripped) and not stripped.startswith(_COMMENT_CHARS)


class ConfigText:
    """All lines of one config file, in order, for in-place edits."""

    def __init__(self, path: str, lines: list[str] | None = None) -> None:
        self.path = path
        self.lines: list[str] = lines if lines is not None else []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConfigText:
        """Read ``path``; a missing file gives an empty text (write-back creates it)."""
        name = os.fspath(path)
        try:
            with open(name, encoding="utf-8", errors="surrogateescape", newline=None) as f:
                text = f.read()
        except FileNotFoundError:
            return cls(name, [])
        except OSError as exc:
            raise config_error(name, None, None, f"cannot read: {exc.strerror}") from None
        if text.startswith("\ufeff"):
            text = text[1:]
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline is not a line of its own
        return cls(name, [line.rstrip("\r") for line in lines])

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def save(self) -> None:
        atomic_write(self.path, self.text())

    def find(self, match: Callable[[str], bool]) -> list[int]:
        """Indexes of meaningful lines for which ``match(raw)`` is true."""
        return [i for i, raw in enumerate(self.lines) if is_meaningful(raw) and match(raw)]


def atomic_write(path: str, text: str) -> None:
    """Replace ``path`` with ``text``: temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = 0o600
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- tibemsd.conf: name = value ---------------------------------------------------


def assignment_key(raw: str) -> str | None:
    m = _ASSIGN_KEY_RE.match(raw)
    return m.group(1).lower() if m else None


def format_assignment(name: str, value: str, template: str | None = None) -> str:
    """``name = value``; keeps the column of ``=`` of the line it replaces."""
    if value and (" " in value or "\t" in value) and not value.startswith('"'):
        value = f'"{value}"'
    if template is not None:
        m = re.match(r"(\s*)([A-Za-z_][A-Za-z0-9_.\-]*)(\s*=\s*)", template)
        if m is not None:
            return f"{m.group(1)}{m.group(2)}{m.group(3)}{value}".rstrip()
    return f"{name:<23} = {value}".rstrip()


def set_assignment(text: ConfigText, name: str, value: str) -> None:
    """Set ``name`` to ``value``: rewrite its last line, drop earlier duplicates, or append."""
    key = name.lower()
    found = text.find(lambda raw: assignment_key(raw) == key)
    if not found:
        text.lines.append(format_assignment(key, value))
        return
    last = found[-1]
    text.lines[last] = format_assignment(key, value, text.lines[last])
    for i in reversed(found[:-1]):
        del text.lines[i]


# -- queues.conf / topics.conf: name  props ---------------------------------------


def destination_name(raw: str) -> str | None:
    text = raw.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[end + 1 :].strip()
    parts = text.split(None, 1)
    return parts[0] if parts else None


def format_destination(name: str, props: str) -> str:
    return f"{name:<15} {props}".rstrip() if props else name


def set_destination(text: ConfigText, name: str, props: str) -> bool:
    """Write ``name props``; returns True if a line was replaced, False if appended."""
    found = text.find(lambda raw: destination_name(raw) == name)
    line = format_destination(name, props)
    if found:
        raw = text.lines[found[0]].strip()
        if raw.startswith("["):  # keep JNDI names in front of the entry
            line = raw[: raw.index("]") + 1] + line
        text.lines[found[0]] = line
        return True
    text.lines.append(line)
    return False


def delete_destination(text: ConfigText, name: str) -> bool:
    found = text.find(lambda raw: destination_name(raw) == name)
    for i in reversed(found):
        del text.lines[i]
    return bool(found)
