"""``tibemsd.conf``: the main server parameters (EMS.md 3), typed and validated.

``load_tibemsd`` reads the file, applies command-line overrides, checks values
and cross-parameter rules, and returns a frozen ``TibemsdConfig``. Unknown names
only warn (EMS files carry many parameters we do not implement); bad values
raise ``ConfigError`` naming file, line and key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emsfast.auth.passwords import unmangle
from emsfast.config.syntax import (
    Item,
    config_error,
    parse_bool,
    parse_int,
    parse_seconds,
    parse_size,
    read_assignments,
    split_list,
)
from emsfast.config.urls import ListenURL, parse_url, parse_url_list
from emsfast.consts import (
    MAX_CLIENT_PENDING_BYTES,
    MAX_MSG_SIZE_CEILING,
    MAX_SELECTOR_LENGTH,
    PREAUTH_MAX_FRAME,
)
from emsfast.errors import ConfigError

COMMAND_LINE = "command line"  # the ``source`` file name of an override

STARTUP_ABORT_ITEMS = frozenset({"CONFIG_FILES", "CONFIG_ERRORS", "DB_FILES", "SSL", "TRANSPORTS"})
NPSEND_CHECK_MODES = frozenset({"", "default", "always", "never", "temp_dest", "auth", "temp_auth"})
# EMS refuses less message memory than this (EMS.md 3.3); 0 means no limit.
MIN_MSG_MEMORY = 8 * 1024 * 1024
# A HELLO with a long password or a STOMP CONNECT with its headers fits in 1KB;
# a smaller max_preauth_bytes would lock every client out.
MIN_PREAUTH_BYTES = 1024

# Parameter -> file name used when tibemsd.conf does not set it (beside tibemsd.conf).
FILE_PARAMS: dict[str, str] = {
    "users": "users.conf",
    "groups": "groups.conf",
    "acl_list": "acl.conf",
    "queues": "queues.conf",
    "topics": "topics.conf",
    "durables": "durables.conf",
    "factories": "factories.conf",
    "stores": "stores.conf",
    "routes": "routes.conf",
    "bridges": "bridges.conf",
}
REPEATABLE = frozenset(
    {"listen", "ssl_server_issuer", "ssl_server_trusted", "ft_ssl_issuer", "ft_ssl_trusted"}
)
# Real EMS parameters not typed yet: kept verbatim in ``extra`` without a warning,
# so a later issue can give them a field and write-back never loses them.
LATER_PARAMS = frozenset(
    {
        "msg_swapping",
        "flow_control",
        "routing",
        "track_message_ids",
        "track_correlation_ids",
        "statistics",
        "rate_interval",
        "server_rate_interval",
        "detailed_statistics",
        "statistics_cleanup_interval",
        "max_stat_memory",
        "clock_sync_interval",
        "reserve_memory",
        "max_client_msg_size",
        "destination_backlog_swapout",
        "disconnect_non_acking_consumers",
        "ssl_require_route_cert_only",
        "ssl_dh_size",
        "ssl_crl_path",
        "ssl_crl_update_interval",
        "ssl_rand_egd",
        "ft_ssl_rand_egd",
        "user_auth",
        "jaas_config_file",
        "jaas_login_timeout",
        "multicast",
        "module_path",
        "secondary_ft_active",
    }
)


def _text(value: str) -> str:
    return value


def _password(value: str) -> str:
    # ``set server password=`` stores it mangled; the FT peer needs it in clear.
    return unmangle(value)


def _nonneg_int(value: str) -> int:
    return parse_int(value, minimum=0)


def _abort_list(value: str) -> frozenset[str]:
    items = {item.upper() for item in split_list(value)}
    bad = sorted(items - STARTUP_ABORT_ITEMS)
    if bad:
        raise ValueError(
            f"unknown item {bad[0]!r}; expected some of {', '.join(sorted(STARTUP_ABORT_ITEMS))}"
        )
    return frozenset(items)


def _npsend(value: str) -> str:
    mode = value.strip().lower()
    if mode not in NPSEND_CHECK_MODES:
        raise ValueError(
            f"expected one of {', '.join(sorted(NPSEND_CHECK_MODES - {''}))}, got {value!r}"
        )
    return mode


def _listen(value: str) -> str:
    parse_url(value)
    return value.strip()


def parse_service_url(text: str, scheme: str) -> ListenURL:
    """``http://:7220``, ``tcp://host:61613``: a side listener's URL (empty host = all).

    Returned with scheme ``tcp`` so the listener code treats it like ``listen``.
    """
    url = text.strip()
    given, sep, rest = url.partition("://")
    if not sep:
        given, rest = scheme, url
    if given.lower() != scheme:
        raise ValueError(f"expected a {scheme}:// URL, got {text!r}")
    if rest.startswith(":"):
        rest = rest[1:]  # "http://:7220" is every interface, as in EMS's samples
    return parse_url("tcp://" + rest)


def _health_url(value: str) -> str:
    parse_service_url(value, "http")
    return value.strip()


def _stomp_url(value: str) -> str:
    parse_service_url(value, "tcp")
    return value.strip()


def _ft_active(value: str) -> str:
    parse_url_list(value)
    return value.strip()


def _max_msg_size(value: str) -> int:
    size = parse_size(value)
    if size > MAX_MSG_SIZE_CEILING:
        raise ValueError(f"at most 512MB, got {value!r}")
    return size


def _max_preauth_bytes(value: str) -> int:
    size = parse_size(value)
    if size < MIN_PREAUTH_BYTES:
        raise ValueError(f"expected at least 1KB (a login must fit), got {value!r}")
    return size


def _max_msg_memory(value: str) -> int:
    size = parse_size(value)
    if 0 < size < MIN_MSG_MEMORY:
        raise ValueError(f"expected 0 (no limit) or at least 8MB, got {value!r}")
    return size


# Parameter -> value parser; every key is also a TibemsdConfig field.
_PARSERS: dict[str, Callable[[str], object]] = {
    "server": _text,
    "password": _password,
    "ssl_password": _password,
    "ft_ssl_password": _password,
    "listen": _listen,
    "authorization": parse_bool,
    **dict.fromkeys(FILE_PARAMS, _text),
    "store": _text,
    "logfile": _text,
    "logfile_max_size": parse_size,
    "log_trace": _text,
    "console_trace": _text,
    "max_connections": _nonneg_int,
    "max_msg_size": _max_msg_size,
    "max_msg_memory": _max_msg_memory,
    "max_preauth_bytes": _max_preauth_bytes,
    "max_selector_length": _nonneg_int,
    "max_client_pending_bytes": parse_size,
    "max_client_objects": _nonneg_int,
    "ft_active": _ft_active,
    "ft_heartbeat": parse_seconds,
    "ft_activation": parse_seconds,
    "ft_reconnect_timeout": parse_seconds,
    "handshake_timeout": parse_seconds,
    "client_heartbeat_server": parse_seconds,
    "server_timeout_client_connection": parse_seconds,
    "server_heartbeat_client": parse_seconds,
    "client_timeout_server_connection": parse_seconds,
    "startup_abort_list": _abort_list,
    "health_check_listen": _health_url,
    "stomp_listen": _stomp_url,
    "npsend_check_mode": _npsend,
    **dict.fromkeys(
        (
            "ssl_server_identity",
            "ssl_server_key",
            "ssl_server_issuer",
            "ssl_server_trusted",
            "ssl_require_client_cert",
            "ssl_server_ciphers",
            "ssl_use_cert_username",
            "ssl_cert_user_specname",
            "ft_ssl_identity",
            "ft_ssl_issuer",
            "ft_ssl_private_key",
            "ft_ssl_trusted",
            "ft_ssl_verify_host",
            "ft_ssl_verify_hostname",
            "ft_ssl_expected_hostname",
            "ft_ssl_ciphers",
        ),
        _text,
    ),
}


@dataclass(frozen=True, slots=True)
class TibemsdConfig:
    """Typed tibemsd.conf. Times are float seconds, sizes bytes, 0 = unlimited/off.

    File-name parameters are absolute paths. ``source`` maps each parameter that
    was set to (file, line); overrides appear as (``COMMAND_LINE``, 0).
    """

    path: str = "tibemsd.conf"
    server: str = "EMS-SERVER"
    password: str = ""
    listen: list[str] = field(default_factory=lambda: ["tcp://7222"])
    authorization: bool = False
    users: str = "users.conf"
    groups: str = "groups.conf"
    acl_list: str = "acl.conf"
    queues: str = "queues.conf"
    topics: str = "topics.conf"
    durables: str = "durables.conf"
    factories: str = "factories.conf"
    stores: str = "stores.conf"
    routes: str = "routes.conf"
    bridges: str = "bridges.conf"
    store: str = "datastore"
    logfile: str | None = None
    logfile_max_size: int = 0
    log_trace: str = "DEFAULT"
    console_trace: str = "DEFAULT"
    max_connections: int = 0
    max_msg_size: int = 0
    max_msg_memory: int = 0
    # emsfast extensions (docs/operations.md, "Limits against abuse").
    max_preauth_bytes: int = PREAUTH_MAX_FRAME
    max_selector_length: int = MAX_SELECTOR_LENGTH
    max_client_pending_bytes: int = MAX_CLIENT_PENDING_BYTES
    max_client_objects: int = 10_000
    ft_active: str = ""
    ft_heartbeat: float = 3
    ft_activation: float = 10
    ft_reconnect_timeout: float = 60
    handshake_timeout: float = 3
    client_heartbeat_server: float = 0
    server_timeout_client_connection: float = 0
    server_heartbeat_client: float = 0
    client_timeout_server_connection: float = 0
    startup_abort_list: frozenset[str] = frozenset()
    npsend_check_mode: str = ""
    health_check_listen: str = ""
    stomp_listen: str = ""
    ssl_server_identity: str = ""
    ssl_server_key: str = ""
    ssl_password: str = ""
    ssl_server_issuer: list[str] = field(default_factory=list)
    ssl_server_trusted: list[str] = field(default_factory=list)
    ssl_require_client_cert: str = ""
    ssl_server_ciphers: str = ""
    ssl_use_cert_username: str = ""
    ssl_cert_user_specname: str = "CERTIFICATE_USER"
    ft_ssl_identity: str = ""
    ft_ssl_issuer: list[str] = field(default_factory=list)
    ft_ssl_private_key: str = ""
    ft_ssl_password: str = ""
    ft_ssl_trusted: list[str] = field(default_factory=list)
    ft_ssl_verify_host: str = ""
    ft_ssl_verify_hostname: str = ""
    ft_ssl_expected_hostname: str = ""
    ft_ssl_ciphers: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    source: dict[str, tuple[str, int]] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def listen_urls(self) -> list[ListenURL]:
        return [parse_url(url) for url in self.listen]

    @property
    def ft_active_urls(self) -> list[ListenURL]:
        """The FT peer's URLs; empty = standalone."""
        return parse_url_list(self.ft_active) if self.ft_active else []

    def is_set(self, name: str) -> bool:
        """True if the file or the command line set ``name`` (a file is then required)."""
        return name in self.source

    @property
    def handshake_seconds(self) -> float:
        """handshake_timeout in effect (EMS.md 2.5): as set, else 3 s or the largest
        heartbeat/timeout when that is longer."""
        if self.handshake_timeout and self.is_set("handshake_timeout"):
            return self.handshake_timeout
        return max(3.0, self.client_heartbeat_server, self.server_timeout_client_connection,
                   self.server_heartbeat_client, self.client_timeout_server_connection)


def parse_parameter(name: str, text: str) -> object:
    """The typed value of one parameter (``set server``); ValueError names the problem."""
    parser = _PARSERS.get(name.lower())
    if parser is None:
        raise ValueError(f"unknown parameter {name!r}")
    return parser(text)


def load_tibemsd(
    path: str | os.PathLike[str], overrides: dict[str, str] | None = None
) -> TibemsdConfig:
    """Read ``path``; ``overrides`` (parameter -> text, from the command line) win."""
    conf_path = os.fspath(path)
    values: dict[str, Any] = {}
    source: dict[str, tuple[str, int]] = {}
    extra: dict[str, str] = {}
    warnings: list[str] = []
    items = read_assignments(conf_path)
    for item in items:
        _apply(item, values, source, extra, warnings, from_file=True)
    for key, text in (overrides or {}).items():
        name = key.lower().lstrip("-")
        if name not in _PARSERS:
            raise config_error(COMMAND_LINE, None, name, "unknown parameter")
        if name in REPEATABLE:
            values.pop(name, None)  # an override replaces the file's list
        parts = split_list(text) if name == "listen" else [text]
        for part in parts:
            _apply(
                Item(name, part, COMMAND_LINE, 0, text),
                values,
                source,
                extra,
                warnings,
                from_file=False,
            )
    conf_dir = os.path.dirname(os.path.abspath(conf_path))
    for name, default in FILE_PARAMS.items():
        given = values.get(name)
        # EMS resolves relative names against the working directory; absent names
        # default to the file beside tibemsd.conf.
        values[name] = os.path.abspath(given) if given else os.path.join(conf_dir, default)
    config = TibemsdConfig(
        path=conf_path,
        extra=extra,
        source=source,
        items=items,
        warnings=warnings,
        **values,
    )
    check_rules(config, warnings)
    return config


def _apply(
    item: Item,
    values: dict[str, Any],
    source: dict[str, tuple[str, int]],
    extra: dict[str, str],
    warnings: list[str],
    *,
    from_file: bool,
) -> None:
    name = item.key
    parser = _PARSERS.get(name)
    if parser is None:
        if name in LATER_PARAMS:
            extra[name] = item.value
        else:
            warnings.append(f"{item.where}: unknown parameter {name!r}")
        return
    if item.value == "":
        return  # EMS: an empty value leaves the parameter unset
    try:
        value = parser(item.value)
    except ValueError as exc:
        raise config_error(item.path, item.line or None, name, str(exc)) from None
    if name in REPEATABLE:
        values.setdefault(name, []).append(value)
    else:
        if from_file and name in source:
            first = source[name][1]
            warnings.append(f"{item.where}: {name} already set at line {first}; last value wins")
        values[name] = value
    source[name] = (item.path, item.line)


def check_rules(config: TibemsdConfig, warnings: list[str]) -> None:
    """Rules that involve more than one parameter (EMS.md 1.3, 1.13, 2.5)."""
    if config.ft_active and config.ft_activation <= 2 * config.ft_heartbeat:
        raise _cross_error(
            config,
            "ft_activation",
            "ft_heartbeat",
            f"must be more than twice ft_heartbeat when ft_active is set "
            f"(ft_activation {config.ft_activation:g}, ft_heartbeat {config.ft_heartbeat:g})",
        )
    if config.server_timeout_client_connection and not config.client_heartbeat_server:
        raise _cross_error(config, "server_timeout_client_connection",
                           "client_heartbeat_server", "requires client_heartbeat_server to be set")
    # A heartbeat at most a third of the timeout that waits for it (EMS.md 2.5), else an
    # idle but healthy peer is dropped between two beats. server_heartbeat_client
    # is 5 s when not set.
    for timeout, heartbeat, beat in (
        ("server_timeout_client_connection", "client_heartbeat_server",
         config.client_heartbeat_server),
        ("client_timeout_server_connection", "server_heartbeat_client",
         config.server_heartbeat_client or 5.0),
    ):
        limit = getattr(config, timeout)
        if limit and beat * 3 > limit:
            raise _cross_error(config, timeout, heartbeat,
                               f"{limit:g} s must be at least 3 × {heartbeat} ({beat:g} s)")
    if config.ft_active:
        own = {(u.scheme, u.host, u.port) for u in config.listen_urls}
        for peer in config.ft_active_urls:
            if (peer.scheme, peer.host, peer.port) in own:
                file, line = config.source["ft_active"]
                warnings.append(f"{file}:{line}: ft_active {peer} is this server's own listen URL")


def _cross_error(config: TibemsdConfig, key: str, other: str, problem: str) -> ConfigError:
    # Point at whichever of the two was written down; the first one when both were.
    file, line = config.source.get(key) or config.source.get(other) or (config.path, 0)
    return config_error(file, line or None, key, problem)
