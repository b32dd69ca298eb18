"""emsfast-admin: tibemsadmin-style REPL and script runner (EMS.md 6.1).

The tool only moves text: each command is checked against the grammar here (so
a typo never reaches the server), sent as REQUEST ``admin.command``, and the
reply lines are printed. The server executes and checks permissions.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import sys
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from emsfast.cli import EmsArgumentParser, add_ssl_options, fail, reader_went_away, ssl_options

PROG = "emsfast-admin"
HISTORY = os.path.join(os.path.expanduser("~"), ".emsfast_admin_history")

_EPILOG = """\
interactive mode: type 'help' for the commands, 'exit' or 'quit' to leave.
script mode (-script FILE): one command per line, '#' lines are comments; stops at
the first failed command with exit status 1 unless -ignore (syntax errors always stop).

exit status: 0 success, 1 connection/authentication/command error, 2 usage error.
"""

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    p = EmsArgumentParser(PROG, "Administer an emsfast (EMS-compatible) server.", _EPILOG)
    p.add_argument("-server", default="tcp://localhost:7222", metavar="URL",
                   help="server URL or FT list (default tcp://localhost:7222)")
    p.add_argument("-user", default="admin", metavar="U", help="user name (default admin)")
    p.add_argument("-password", default=None, metavar="P")
    p.add_argument("-pwdfile", default=None, metavar="FILE",
                   help="read the password from FILE (-password wins)")
    p.add_argument("-script", default=None, metavar="FILE", help="run the commands in FILE")
    p.add_argument("-mangle", nargs="?", const="", default=None, metavar="PASSWORD",
                   help="print PASSWORD mangled for tibemsd.conf (prompted if omitted) "
                        "and exit")
    p.add_argument("-ignore", action="store_true",
                   help="in a script, go on after a failed command")
    add_ssl_options(p)
    return p


class AdminSession:
    """The connection to a server, driven from synchronous code (input() waits).

    Its event loop runs in a thread of its own, so the connection keeps exchanging
    heartbeats while the prompt waits (a server with server_timeout_client_connection
    would drop an idle operator otherwise).
    """

    def __init__(self, url: str, user: str, tls: dict[str, Any] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emsfast-admin",
                                        daemon=True)
        self._thread.start()
        self.conn: Any = None
        self.url = url
        self.user = user
        self.tls = tls or {}  # ssl_* connect() options, also for 'connect ssl://...'

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def connect(self, url: str, user: str, password: str | None) -> None:
        from emsfast.client.connection import connect

        tls = self.tls if url.strip().lower().startswith("ssl://") else {}
        conn = self._call(connect(url, user=user, password=password, **tls))
        self.close()
        self.conn, self.url, self.user = conn, url, user

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.is_closed

    def run(self, text: str) -> list[str]:
        from emsfast.errors import ConnectionClosedError

        if self.conn is None:
            raise ConnectionClosedError("not connected; use 'connect [URL] [USER PASSWORD]'")
        reply = self._call(self._request(text))
        lines = reply.get("lines") or []
        return [str(line) for line in lines]

    async def _request(self, text: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.conn.request("admin.command", {"command": text})
        return result

    def close(self) -> None:
        if self.conn is None:
            return
        conn, self.conn = self.conn, None
        try:
            self._call(asyncio.wait_for(conn.close(), 5))
        except Exception:  # closing anyway
            pass

    def shutdown(self) -> None:
        """Close the connection and stop the loop's thread."""
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def _prepare(text: str, interactive: bool) -> tuple[str, Any]:
    """Parse ``text``; fill a missing password by prompting when interactive."""
    from emsfast.admin.commands import parse_command

    cmd = parse_command(text)
    if cmd.name == "set password" and cmd.args["password"] is None and interactive:
        pw = getpass.getpass(f"Password for user '{cmd.args['name']}': ")
        text = f'{text.strip()} "{pw}"' if pw else text
    elif cmd.name == "set server" and interactive and ("password", None) in cmd.args["params"]:
        pw = getpass.getpass("Server password: ")
        if pw:
            text = re.sub(r"(?i)\bpassword\b(?!=)", lambda _: f'password="{pw}"', text, count=1)
    return text, cmd


def _execute(session: AdminSession, text: str, interactive: bool) -> tuple[bool, bool]:
    """Run one line; returns (ok, syntax_error). Prints the result or the error."""
    from emsfast.admin.commands import CommandSyntaxError, help_text
    from emsfast.errors import EmsfastError

    try:
        text, cmd = _prepare(text, interactive)
    except CommandSyntaxError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return False, True
    if cmd.name == "help":
        print(help_text())
        return True, False
    if cmd.name == "disconnect":
        session.close()
        print(f"Disconnected from {session.url}.")
        return True, False
    if cmd.name == "compare":
        return _compare(session, cmd.args), False
    if cmd.name == "connect":
        a = cmd.args
        password = a["password"]
        if password is None and a["user"] is not None and interactive:
            password = getpass.getpass(f"Password for '{a['user']}': ")
        url, user = a["url"] or session.url, a["user"] or session.user
        try:
            session.connect(url, user, password)
        except (EmsfastError, OSError) as exc:
            print(f"Error: cannot connect to {url} as '{user}': {exc}", file=sys.stderr,
                  flush=True)
            return False, False
        print(f"Connected to: {url} as '{user}'.")
        return True, False
    try:
        lines = session.run(text)
    except EmsfastError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return False, False
    for line in lines:
        print(line)
    sys.stdout.flush()
    return True, False


def _compare(session: AdminSession, a: dict[str, Any]) -> bool:
    """Diff the configuration digests of this server and ``a["url"]`` (EMS.md 1.9:
    independent servers of a `+` list must match); False when they differ."""
    from emsfast.errors import EmsfastError

    other = AdminSession(a["url"], a["user"] or session.user)
    try:
        mine = dict(line.split(": ", 1) for line in session.run("show digest"))
        other.connect(a["url"], a["user"] or session.user, a["password"])
        theirs = dict(line.split(": ", 1) for line in other.run("show digest"))
    except (EmsfastError, OSError) as exc:
        print(f"Error: compare with {a['url']}: {exc}", file=sys.stderr, flush=True)
        return False
    finally:
        other.shutdown()
    differ = [s for s in mine if theirs.get(s) != mine[s]]
    for section in differ:
        print(f"{section}: differs between {session.url} and {a['url']}")
    if not differ:
        print(f"No configuration differences between {session.url} and {a['url']}.")
    sys.stdout.flush()
    return not differ


def _commands(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def run_script(session: AdminSession, path: str, ignore: bool) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        return fail(PROG, f"cannot read script {path}: {exc.strerror}")
    status = 0
    for number, text in _commands(lines):
        if text.lower() in ("exit", "quit"):
            break
        print(f"{session.url}> {text}", flush=True)
        ok, syntax = _execute(session, text, interactive=False)
        if ok:
            continue
        status = 1
        if syntax or not ignore:
            print(f"{PROG}: script {path} stopped at line {number}", file=sys.stderr)
            return 1
    return status


def repl(session: AdminSession) -> int:
    readline: Any = None
    if sys.stdin.isatty():  # history only for a person typing, not for piped commands
        try:
            import readline
        except ImportError:  # pragma: no cover - no readline on this platform
            pass
    if readline is not None:
        try:
            readline.read_history_file(HISTORY)
        except OSError:
            pass
    status = 0
    interactive = sys.stdin.isatty()
    try:
        while True:
            try:
                text = input(f"{session.url}> ")
            except EOFError:
                print()
                break
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            if text.lower() in ("exit", "quit"):
                break
            ok, _ = _execute(session, text, interactive)
            if not ok and not interactive:
                status = 1  # commands piped in: report failure like a script does
            if session.conn is not None and session.conn.is_closed:
                print("Connection to the server is closed.", file=sys.stderr)
                if not interactive:
                    return 1
                session.close()  # the person may 'connect' again
    except KeyboardInterrupt:
        print()
    finally:
        if readline is not None:
            try:
                readline.write_history_file(HISTORY)
            except OSError:
                pass
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mangle is not None:
        from emsfast.auth.passwords import mangle

        print(mangle(args.mangle or getpass.getpass("Password: ")))
        return 0
    password = args.password
    if password is None and args.pwdfile:
        try:
            with open(args.pwdfile, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            return fail(PROG, f"cannot read {args.pwdfile}: {exc.strerror}")
    from emsfast.errors import EmsfastError

    session = AdminSession(args.server, args.user, ssl_options(args))
    try:
        session.connect(args.server, args.user, password)
    except (EmsfastError, OSError) as exc:
        session.shutdown()
        return fail(PROG, f"cannot connect to {args.server} as '{args.user}': {exc}")
    try:
        if args.script:
            return run_script(session, args.script, args.ignore)
        if sys.stdin.isatty():
            print(f"Connected to: {session.url} as '{args.user}'. Type 'help' for commands.")
        return repl(session)
    except BrokenPipeError:
        return reader_went_away()
    finally:
        session.shutdown()


if __name__ == "__main__":
    sys.exit(main())
