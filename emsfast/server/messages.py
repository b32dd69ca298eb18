"""The server's view of a message: the producer's blob plus routing fields.

The blob is never re-encoded; only the fixed header is read on publish, and the
meta block is decoded lazily when a selector needs headers or properties. The
class lives in the native core because one is built per published message.
"""

from emsfast._core.dispatch import ServerMessage

__all__ = ["ServerMessage"]
