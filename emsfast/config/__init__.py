"""EMS-format configuration: parse and validate tibemsd.conf, queues.conf, topics.conf.

Pure Python; importing it never loads the native core.
"""

from emsfast.config.destinations import (
    DestinationEntry,
    DestinationProps,
    DestinationTable,
    OverflowPolicy,
    load_destinations,
)
from emsfast.config.names import (
    WildcardPattern,
    compile_pattern,
    is_wildcard,
    validate_destination_name,
    wildcard_match,
)
from emsfast.config.tibemsd import TibemsdConfig, load_tibemsd
from emsfast.config.urls import ListenURL, parse_url, parse_url_groups, parse_url_list

__all__ = [
    "DestinationEntry",
    "DestinationProps",
    "DestinationTable",
    "ListenURL",
    "OverflowPolicy",
    "TibemsdConfig",
    "WildcardPattern",
    "compile_pattern",
    "is_wildcard",
    "load_destinations",
    "load_tibemsd",
    "parse_url",
    "parse_url_groups",
    "parse_url_list",
    "validate_destination_name",
    "wildcard_match",
]
