"""emsfast-admin through the real CLI (subprocess) against real daemons (issue 6).

Most commands run in one script per daemon to keep the number of processes low;
each assertion names the command whose output it checks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import emsfast
from emsfast._testbase.server_process import free_port_closed, run_cli
from emsfast.auth.passwords import verify_password
from emsfast.config.security import load_acl, load_groups, load_users
from emsfast.errors import EmsfastError, NotAllowedError

pytestmark = pytest.mark.timeout(90)


def admin(server, *args, input=None, user="admin", password=""):
    cmd = ["-server", server.url, "-user", user, "-password", password, *args]
    return run_cli("admin", cmd, input=input)


def script(server, tmp_path, text, *args, **kwargs):
    path = tmp_path / "script.txt"
    path.write_text(text)
    return admin(server, "-script", str(path), *args, **kwargs)


def sections(out):
    """Output of a script split per command: {command text: [lines]}."""
    result, current = {}, None
    for line in out.splitlines():
        if "> " in line and line.startswith("tcp://"):
            current = line.split("> ", 1)[1]
            result[current] = []
        elif current is not None:
            result[current].append(line)
    return result


ALL_COMMANDS = """\
# every command once; comments and blank lines are skipped

info
show server
show state
create user alice "Order entry" password=alicepw
create user bob
set password bob bobpw
show users
show user alice
create group ops "Night shift"
add member ops alice,bob
remove member ops bob
show groups
show group ops
create queue adm.q secure,maxmsgs=100
create topic adm.t.> secure
show queue adm.q
show topic adm.t.>
addprop queue adm.q exclusive
removeprop queue adm.q maxmsgs
setprop queue adm.q secure,maxbytes=1MB
show queues adm.>
show topics
grant queue adm.q user=alice send,receive
grant queue adm.q ops browse
grant topic adm.t.> group=ops publish
grant admin user=alice view-all
revoke queue adm.q user=alice receive
showacl queue adm.q
showacl admin
showacl user alice
showacl group ops
create queue adm.tmp
delete queue adm.tmp
create group gone
delete group gone
create user carl
delete user carl
show connections
show consumers
show stat
show stat queue adm.q
show durables
purge queue adm.q
purge all queues adm.>
purge topic adm.t.x
show config
commit
"""


def test_every_command_through_the_cli(server_factory, tmp_path):
    server = server_factory(queues="# queues\n>\n", topics="# topics\n>\n")
    rc, out, err = script(server, tmp_path, ALL_COMMANDS)
    assert rc == 0, out + err
    s = sections(out)
    for cmd in ("info", "show server"):
        assert f"Server: {server.name}" in s[cmd][0]
        assert "State: active" in s[cmd]
    assert s["show state"] == [f"Server: {server.name}", "State: active"]
    assert any(line.startswith("alice") and "Order entry" in line for line in s["show users"])
    assert "Password: set" in s["show user alice"]
    assert "Members: alice" in s["show group ops"]
    assert "Properties: secure,maxmsgs=100" in s["show queue adm.q"]
    assert "Effective: secure,store=$sys.nonfailsafe,maxmsgs=100,prefetch=5" in s[
        "show queue adm.q"]
    assert s["setprop queue adm.q secure,maxbytes=1MB"] == [
        "Queue 'adm.q' properties: secure,maxbytes=1MB"]
    assert any(line.split()[:2] == ["adm.q", "+"] for line in s["show queues adm.>"])
    assert any(line.split()[:2] == ["adm.t.>", "+"] for line in s["show topics"])
    assert s["showacl queue adm.q"] == [
        "QUEUE=adm.q      USER=alice       PERM=send",
        "QUEUE=adm.q      GROUP=ops        PERM=browse",
    ]
    assert s["showacl admin"] == ["ADMIN            USER=alice       PERM=view-all"]
    assert len(s["showacl user alice"]) == 2
    assert s["showacl group ops"][1].startswith("TOPIC=adm.t.>")
    assert s["show connections"][0].split()[:3] == ["ID", "User", "Host"]
    assert any(" admin " in f" {line} " for line in s["show connections"][1:])
    assert "Queues: 1" in s["show stat"]
    assert s["purge queue adm.q"] == ["Purged 0 messages from queue 'adm.q'."]
    assert "authorization: disabled" in s["show config"]
    # Write-back: comments kept, passwords hashed, every file in EMS format.
    queues = (server.workdir / "queues.conf").read_text()
    assert queues.startswith("# queues\n>\n") and "adm.q           secure,maxbytes=1MB" in queues
    assert "adm.tmp" not in queues
    assert "adm.t.>         secure" in (server.workdir / "topics.conf").read_text()
    users = load_users(str(server.workdir / "users.conf"), True, [])
    assert verify_password(users["alice"].password, "alicepw")
    assert verify_password(users["bob"].password, "bobpw")
    assert "carl" not in users and "alicepw" not in (server.workdir / "users.conf").read_text()
    groups = load_groups(str(server.workdir / "groups.conf"), True, [])
    assert groups["ops"].members == ["alice"] and "gone" not in groups
    assert len(load_acl(str(server.workdir / "acl.conf"), True, [])) == 4


def test_malformed_commands_are_clear_errors(server, tmp_path):
    rc, out, err = script(server, tmp_path, "show state\ncreate queue\nshow state\n")
    assert rc == 1
    assert "Error: missing queue name; usage: create queue NAME [PROPERTIES]" in err
    assert "stopped at line 2" in err
    assert out.count("State: active") == 1
    rc, out, err = admin(server, input="grant queue q user=x fly\nfrobnicate\n")
    assert rc == 1
    assert "unknown queue permission 'fly'" in err
    assert "unknown command 'frobnicate'" in err


def test_script_stops_at_failed_command_unless_ignore(server, tmp_path):
    text = "delete user nobody\nshow state\n"
    rc, out, err = script(server, tmp_path, text)
    assert rc == 1 and "State: active" not in out
    assert "user 'nobody' does not exist" in err
    rc, out, err = script(server, tmp_path, text, "-ignore")
    assert rc == 1 and "State: active" in out


def test_cannot_connect_and_help(server):
    rc, _, err = run_cli("admin", ["-server", f"tcp://127.0.0.1:{free_port_closed()}"])
    assert rc == 1 and "cannot connect" in err
    rc, out, _ = admin(server, input="help\n")
    assert rc == 0 and "create user NAME" in out and "showacl" in out


def test_durables_and_connections(server, tmp_path):
    topic = emsfast.Topic("adm.dur.topic")

    async def make_durable_and_wait(ready: asyncio.Event, done: asyncio.Event) -> None:
        async with await emsfast.connect(server.url, client_id="admcid") as conn:
            session = conn.session()
            consumer = session.consumer(topic, durable="admdur")
            await consumer.receive(timeout=0.2)
            ready.set()
            await done.wait()

    async def main() -> tuple[int, str, str, int, str, str]:
        ready, done = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(make_durable_and_wait(ready, done))
        await ready.wait()
        rc1, out1, err1 = await asyncio.to_thread(
            script, server, tmp_path, "show durables\nshow consumers\nshow connections\n")
        done.set()
        await task
        rc2, out2, err2 = await asyncio.to_thread(
            script, server, tmp_path,
            "show durable admdur\npurge durable admdur\ndelete durable admdur admcid\n"
            "show durables\n")
        return rc1, out1, err1, rc2, out2, err2

    rc1, out1, err1, rc2, out2, err2 = asyncio.run(main())
    assert rc1 == 0, err1
    s = sections(out1)
    assert any("adm.dur.topic" in line and "admdur" in line and "online" in line
               for line in s["show durables"])
    assert any(" T " in f" {line} " and "adm.dur.topic" in line for line in s["show consumers"])
    assert any("admcid" in line for line in s["show connections"])
    assert rc2 == 0, err2
    s = sections(out2)
    assert "Status: offline" in s["show durable admdur"]
    assert s["delete durable admdur admcid"] == ["Durable 'admcid:admdur' has been deleted."]
    assert len(s["show durables"]) == 1


def test_delete_connection(server, tmp_path):
    async def main() -> tuple[int, str, str]:
        async with await emsfast.connect(server.url, client_id="victim") as conn:
            await conn.ping()
            rc, out, err = await asyncio.to_thread(admin, server, input="show connections\n")
            victim = next(line.split()[0] for line in out.splitlines() if "victim" in line)
            result = await asyncio.to_thread(admin, server, input=f"delete connection {victim}\n")
            with pytest.raises(EmsfastError):
                for _ in range(50):
                    await conn.ping()
                    await asyncio.sleep(0.05)
            return result

    rc, out, err = asyncio.run(main())
    assert rc == 0, err
    assert "has been deleted" in out


def test_ft_authorization_example_word_for_word_and_restart(server_factory, tmp_path):
    server = server_factory(name="EMS-SERVER")
    rc, out, err = script(server, tmp_path,
                          "set server password=mySecret\n"
                          "create user EMS-SERVER password=mySecret\n"
                          "set server authorization=enabled\n"
                          "create queue kept.q secure\n"
                          "grant queue kept.q user=EMS-SERVER send\n")
    assert rc == 0, err
    conf = server.config_path.read_text()
    assert "authorization           = enabled" in conf and "mySecret" not in conf
    # At once: the peer's login works, a stranger's does not, and only admins administer.
    rc, out, err = admin(server, input="show state\n", user="EMS-SERVER", password="mySecret")
    assert rc == 1 and "user 'EMS-SERVER' is not an administrator" in err
    rc, out, err = admin(server, input="info\n", user="EMS-SERVER", password="wrong")
    assert rc == 1 and "invalid user name or password" in err
    # A restart keeps every change (the config is not regenerated).
    server.stop()
    server.proc = None
    server.start(write_config=False)
    assert "Authorization is enabled." in server.log_text()
    rc, out, err = admin(server, input="show config\nshow users\nshow queue kept.q\n"
                                       "showacl queue kept.q\n")
    assert rc == 0, err
    assert "Properties: secure" in out and "USER=EMS-SERVER  PERM=send" in out
    assert "authorization: enabled" in out and "password: ********" in out
    assert "EMS-SERVER" in out

    async def peer_login() -> None:
        async with await emsfast.connect(server.url, user="EMS-SERVER",
                                         password="mySecret") as conn:
            await conn.ping()

    asyncio.run(peer_login())
    from emsfast.config.tibemsd import load_tibemsd

    assert load_tibemsd(server.config_path).password == "mySecret"


def test_admin_permissions_are_checked_per_command(server_factory, tmp_path):
    server = server_factory(start=False, params={"authorization": "enabled"},
                            queues=">\nsec.>  secure\n")
    server.workdir.joinpath("users.conf").write_text(
        'admin::"Administrator"\nviewer:v:""\nqop:q:""\nplain:p:""\ncarol:c:""\n')
    server.workdir.joinpath("groups.conf").write_text('$admin:""\n   carol\n')
    server.workdir.joinpath("acl.conf").write_text(
        "ADMIN USER=viewer PERM=view-all\nQUEUE=sec.a USER=qop PERM=purge\n")
    server.start()
    rc, out, err = admin(server, input="show users\ncreate user z\n", user="viewer",
                         password="v")
    assert rc == 1 and "admin" in out
    assert "may not run 'create user': needs the change-user permission" in err
    rc, out, err = admin(server, input="purge queue sec.a\npurge queue sec.b\n", user="qop",
                         password="q")
    assert "Purged 0 messages from queue 'sec.a'." in out
    assert "may not run 'purge queue': needs the purge-destination permission" in err
    rc, out, err = admin(server, input="info\n", user="plain", password="p")
    assert rc == 1 and "user 'plain' is not an administrator" in err
    rc, out, err = admin(server, input="create user y\nshutdown\n", user="carol", password="c")
    assert rc == 0, err
    assert server.wait(10) == 0


def test_grant_takes_effect_at_once(server_factory, tmp_path):
    server = server_factory(start=False, params={"authorization": "enabled"},
                            queues=">\nsec.>  secure\n")
    server.workdir.joinpath("users.conf").write_text('admin::""\nuser1:pw:""\n')
    server.start()

    async def send() -> None:
        async with await emsfast.connect(server.url, user="user1", password="pw") as conn:
            await conn.session().producer(emsfast.Queue("sec.live")).send(
                emsfast.TextMessage("x"))

    with pytest.raises(NotAllowedError):
        asyncio.run(send())
    rc, out, err = admin(server, input="grant queue sec.> user=user1 send\n")
    assert rc == 0, err
    asyncio.run(send())
    rc, out, err = admin(server, input="revoke queue sec.> user=user1 send\n")
    assert rc == 0, err
    with pytest.raises(NotAllowedError):
        asyncio.run(send())


def test_hand_written_plain_password_is_hashed_on_write_back(server_factory, tmp_path):
    server = server_factory(start=False)
    users = server.workdir / "users.conf"
    users.write_text('# hand-written\nadmin::"Administrator"\nhand:plainpw:"x"\n')
    server.start()
    rc, out, err = admin(server, input="create user other\n")
    assert rc == 0, err
    text = users.read_text()
    assert text.startswith("# hand-written\n") and "plainpw" not in text
    assert verify_password(load_users(str(users), True, [])["hand"].password, "plainpw")


def test_bad_config_file_exits_1_naming_file_and_line(server_factory):
    server = server_factory(start=False)
    server.write_config()
    Path(server.workdir / "acl.conf").write_text("# acl\nQUEUE=q USER=a PERM=fly\n")
    server.start(wait_ready=False, write_config=False)
    assert server.wait(20) == 1
    assert "acl.conf:2: unknown queue permission 'fly'" in server.log_text()


def test_interactive_repl_on_a_terminal(server, tmp_path):
    """A real pty: banner, prompt with the URL, help, a command, history saved on exit."""
    import os
    import pty
    import subprocess
    import time

    from emsfast._testbase.server_process import child_env, cli_command

    primary, secondary = pty.openpty()
    env = child_env({"HOME": str(tmp_path), "TERM": "dumb"})
    proc = subprocess.Popen(cli_command("admin", ["-server", server.url, "-password", ""]),
                            stdin=secondary, stdout=secondary, stderr=secondary, env=env,
                            start_new_session=True)
    os.close(secondary)
    out = b""

    def read_until(marker: bytes, times: int = 1, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while out.count(marker) < times and time.monotonic() < deadline:
            try:
                out += os.read(primary, 4096)
            except OSError:
                break

    try:
        read_until(f"{server.url}> ".encode())
        os.write(primary, b"help\nshow state\n")
        read_until(b"State: active")
        os.write(primary, b"disconnect\nshow state\n")
        read_until(b"not connected")
        os.write(primary, f"connect {server.url} admin \"\"\nshow state\n".encode())
        read_until(b"State: active", times=2)
        os.write(primary, b"exit\n")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    text = out.decode(errors="replace")
    assert f"Connected to: {server.url}" in text and "create user NAME" in text
    assert text.count("State: active") == 2 and "Disconnected from" in text
    assert "show state" in (tmp_path / ".emsfast_admin_history").read_text()
