"""Conformance suites every registered component of a kind must pass, importable by plugin tests.

In a plugin's test file, one line per component::

    from sbcore.testing import network_conformance, process_conformance

    test_resmlp = network_conformance("resmlp", {"hidden": 16, "blocks": 1}, shapes=[(2,)])
    test_i2sb = process_conformance("i2sb", {"interval": 100}, shape=(1, 4, 4))

Each returns a pytest test parametrised over the suite's checks; a failure names the component, the
check and what was expected. The core's tests run the suites over every component the registry holds.
"""

from sbcore.testing.cli import cli_failure, run_cli, snapshot
from sbcore.testing.coupling import CouplingSuite, coupling_conformance
from sbcore.testing.network import NetworkSuite, network_conformance
from sbcore.testing.process import ProcessSuite, process_conformance
from sbcore.testing.resume import assert_resume_is_exact
from sbcore.testing.run_config import tiny_run_config, write_tiny_config
from sbcore.testing.sampler import SamplerSuite, sampler_conformance
from sbcore.testing.suite import ConformanceError, Suite, conformance

__all__ = ["ConformanceError", "CouplingSuite", "NetworkSuite", "ProcessSuite", "SamplerSuite", "Suite",
           "assert_resume_is_exact", "cli_failure", "conformance", "coupling_conformance", "network_conformance",
           "process_conformance", "run_cli", "sampler_conformance", "snapshot", "tiny_run_config", "write_tiny_config"]
