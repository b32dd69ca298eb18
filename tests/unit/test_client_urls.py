"""Client URL lists (EMS.md §2.1)."""

import pytest

from emsfast.errors import InvalidError
from emsfast.link.urls import ServerUrl, UnsupportedUrlError, parse_url_list


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp://localhost:7222", [ServerUrl("tcp", "localhost", 7222)]),
        ("tcp://7222", [ServerUrl("tcp", "localhost", 7222)]),
        ("tcp://7224", [ServerUrl("tcp", "localhost", 7224)]),
        ("tcp://host.example", [ServerUrl("tcp", "host.example", 7222)]),
        ("TCP://a:1", [ServerUrl("tcp", "a", 1)]),
        ("tcp://[::1]:7222", [ServerUrl("tcp", "::1", 7222)]),
        ("ssl://b:7243", [ServerUrl("ssl", "b", 7243)]),
        (
            "tcp://a:7222,tcp://b:7224",
            [ServerUrl("tcp", "a", 7222), ServerUrl("tcp", "b", 7224)],
        ),
        (
            "tcp://a:7222, tcp://b:7224",
            [ServerUrl("tcp", "a", 7222), ServerUrl("tcp", "b", 7224)],
        ),
    ],
)
def test_parse(text, expected):
    assert parse_url_list(text) == expected


def test_str_round_trips():
    assert str(ServerUrl("tcp", "::1", 7222)) == "tcp://[::1]:7222"
    assert [str(u) for u in parse_url_list("tcp://a:1, tcp://7224")] == [
        "tcp://a:1",
        "tcp://localhost:7224",
    ]


@pytest.mark.parametrize(
    "text",
    ["", " ", "tcp://a:7222,", ",tcp://a", "tcp://a:70000", "tcp://a:0", "http://a:1",
     "tcp://a:7222,ssl://b:7243", "tcp://a:b"],
)
def test_rejects(text):
    with pytest.raises(InvalidError):
        parse_url_list(text)


@pytest.mark.parametrize("text", ["tcp://a:1|tcp://b:2", "tcp://a:1+tcp://b:2"])
def test_unsupported_forms_say_so(text):
    with pytest.raises(UnsupportedUrlError):
        parse_url_list(text)
