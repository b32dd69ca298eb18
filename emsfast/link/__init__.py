"""The framed link a client dials: its asyncio protocol and server URL lists.

Shared by the client library (emsfast/client) and the FT peer link (emsfast/ft),
which dials its peer the way a client does; it sits below both so that
orchestration never imports the client layer.
"""
