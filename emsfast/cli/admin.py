"""emsfast-admin: a placeholder until the admin issue lands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("emsfast-admin: the admin tool arrives with the admin issue (not yet implemented)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
