"""emsfast: a TIBCO EMS-compatible message broker and its client library."""

from emsfast._version import __version__

__all__ = ["__version__"]
