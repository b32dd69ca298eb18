"""authorization=enabled against a real daemon: logins, and ACLs on secure destinations.

One daemon for the module; each denial test uses its own destination names.
"""

from __future__ import annotations

import asyncio

import pytest

import emsfast
from emsfast._testbase.clientutil import connection
from emsfast.auth.passwords import hash_password
from emsfast.errors import AuthError, NotAllowedError

pytestmark = pytest.mark.timeout(60)

USERS = f"""\
# test users; bob's password is plain text as an operator would write it
admin::"Administrator"
alice:{hash_password("alicepw")}:"Order entry"
bob:bobpw:"Ops"
dora:dorapw:"uses durables only"
"""
GROUPS = """\
operators:"Night shift"
   bob
"""
ACL = """\
QUEUE=sec.q.>   GROUP=operators PERM=send,receive
QUEUE=sec.q.>   USER=alice      PERM=send
TOPIC=sec.t.>   USER=alice      PERM=publish,subscribe
TOPIC=sec.t.>   USER=bob        PERM=use_durable
TOPIC=sec.t.>   GROUP=operators PERM=durable
TOPIC=sec.t.x   USER=carl       PERM=subscribe
TOPIC=sec.t.>   USER=dora       PERM=use_durable
"""
QUEUES = ">\nsec.>  secure\n"
TOPICS = ">\nsec.>  secure\n"


@pytest.fixture(scope="module")
def server(module_server_factory):
    srv = module_server_factory(start=False, queues=QUEUES, topics=TOPICS,
                                params={"authorization": "enabled"})
    srv.workdir.joinpath("users.conf").write_text(USERS)
    srv.workdir.joinpath("groups.conf").write_text(GROUPS)
    srv.workdir.joinpath("acl.conf").write_text(ACL)
    return srv.start()


async def test_valid_logins(server):
    for user, password in (("alice", "alicepw"), ("bob", "bobpw"), ("admin", None)):
        async with connection(server.url, user=user, password=password) as conn:
            await conn.ping()
    assert "Authorization is enabled." in server.log_text()


async def test_wrong_password_and_unknown_user_look_the_same(server):
    texts = []
    for user, password in (("alice", "nope"), ("mallory", "alicepw")):
        with pytest.raises(AuthError) as info:
            await emsfast.connect(server.url, user=user, password=password)
        texts.append(str(info.value))
    assert texts[0] == texts[1]
    assert "invalid user name or password" in texts[0]
    assert "mallory" not in texts[1] and "exist" not in texts[1]
    # The daemon logs before it refuses, but its stderr reaches us through a reader
    # thread: wait for the lines instead of reading the log at once.
    for user in ("alice", "mallory"):
        line = await asyncio.to_thread(server.wait_for_line,
                                       f"[{user}@127.0.0.1]: connect failed:", 10)
        assert "invalid user name or password" in line


async def test_anonymous_is_refused_without_an_anonymous_user(server):
    with pytest.raises(AuthError):
        await emsfast.connect(server.url)


async def test_plain_destinations_need_no_permission(server, uniq):
    async with connection(server.url, user="alice", password="alicepw") as conn:
        session = conn.session()
        q = emsfast.Queue(uniq("open"))
        await session.producer(q).send(emsfast.TextMessage("x"))
        assert (await session.consumer(q).receive(timeout=5)) is not None


async def _denied(conn, make, what):
    with pytest.raises(NotAllowedError) as info:
        await make(conn.session())
    assert what in str(info.value)


async def test_send_and_receive(server, uniq):
    q = emsfast.Queue(uniq("sec.q"))
    async with connection(server.url, user="bob", password="bobpw") as bob:
        session = bob.session()
        await session.producer(q).send(emsfast.TextMessage("ok"))
        assert (await session.consumer(q).receive(timeout=5)) is not None
    async with connection(server.url, user="alice", password="alicepw") as alice:
        await alice.session().producer(q).send(emsfast.TextMessage("alice may send"))

        async def receive(session):
            await session.consumer(q).receive(timeout=5)

        await _denied(alice, receive, "receive")
    other = emsfast.Queue(uniq("sec.other"))
    async with connection(server.url, user="bob", password="bobpw") as bob:
        async def send(session):
            await session.producer(other).send(emsfast.TextMessage("no"))

        await _denied(bob, send, "send")


async def test_publish_subscribe_durable_use_durable(server, uniq):
    t = emsfast.Topic(uniq("sec.t"))
    async with connection(server.url, user="alice", password="alicepw",
                          client_id=uniq("alice")) as alice:
        session = alice.session()
        await session.producer(t).send(emsfast.TextMessage("x"))
        assert (await session.consumer(t).receive(timeout=0.2)) is None

        async def durable(session):
            await session.consumer(t, durable="d1").receive(timeout=0.2)

        await _denied(alice, durable, "durable")
    cid = uniq("bob")
    async with connection(server.url, user="bob", password="bobpw", client_id=cid) as bob:
        async def publish(session):
            await session.producer(t).send(emsfast.TextMessage("no"))

        async def subscribe(session):
            await session.consumer(t).receive(timeout=0.2)

        await _denied(bob, publish, "publish")
        await _denied(bob, subscribe, "subscribe")
        # operators may create the durable; bob alone may only use it.
        consumer = bob.session().consumer(t, durable="d2")
        assert await consumer.receive(timeout=0.2) is None
    async with connection(server.url, user="bob", password="bobpw", client_id=cid) as bob:
        assert await bob.session().consumer(t, durable="d2").receive(timeout=0.2) is None
    assert "not allowed to" in server.log_text()


async def test_use_durable_attaches_but_never_creates(server, uniq):
    t = emsfast.Topic(uniq("sec.t"))
    cid = uniq("shared")
    async with connection(server.url, user="dora", password="dorapw", client_id=cid) as dora:
        async def create(session):
            await session.consumer(t, durable="d").receive(timeout=0.2)

        await _denied(dora, create, "create a durable subscription")
    async with connection(server.url, user="bob", password="bobpw", client_id=cid) as bob:
        assert await bob.session().consumer(t, durable="d").receive(timeout=0.2) is None
    async with connection(server.url, user="dora", password="dorapw", client_id=cid) as dora:
        assert await dora.session().consumer(t, durable="d").receive(timeout=0.2) is None


async def test_browse(server, uniq):
    q = emsfast.Queue(uniq("sec.q"))
    async with connection(server.url, user="alice", password="alicepw") as alice:
        async def browse(session):
            async for _ in session.browser(q):
                pass

        await _denied(alice, browse, "browse")
