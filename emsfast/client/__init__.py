"""The emsfast client library (asyncio). ``emsfast.blocking`` wraps it for threads."""

from emsfast.client.browser import QueueBrowser
from emsfast.client.connection import Connection, connect
from emsfast.client.consumer import Consumer
from emsfast.client.messages import (
    BytesMessage,
    Destination,
    MapMessage,
    Message,
    Queue,
    StreamMessage,
    TextMessage,
    Topic,
)
from emsfast.client.producer import Producer, SendFuture
from emsfast.client.session import Session
from emsfast.client.temporary import Requestor, TemporaryQueue, TemporaryTopic
from emsfast.link.urls import ServerUrl, parse_url_list

__all__ = [
    "BytesMessage",
    "Connection",
    "Consumer",
    "Destination",
    "MapMessage",
    "Message",
    "Producer",
    "Queue",
    "QueueBrowser",
    "Requestor",
    "SendFuture",
    "ServerUrl",
    "Session",
    "StreamMessage",
    "TemporaryQueue",
    "TemporaryTopic",
    "TextMessage",
    "Topic",
    "connect",
    "parse_url_list",
]
