"""Test support: real daemon processes, a fault-injecting proxy, raw wire access."""

from emsfast._testbase.fault_proxy import FaultProxy
from emsfast._testbase.server_process import CliProcess, ServerProcess, run_cli

__all__ = ["CliProcess", "FaultProxy", "ServerProcess", "run_cli"]
