"""The plugin's process and sampler pass the core's conformance suites (sbcore.testing)."""

from __future__ import annotations

from sb_i2sb.process import I2SBBridge

from sbcore.process.scheduled import ScheduledBridge
from sbcore.testing import process_conformance, sampler_conformance

# tabulated on discrete steps (no time derivative) and index 0 already carries the first beta: no exact ends
test_bridge = process_conformance("i2sb", {"interval": 100}, ends=(), continuous=False)
test_ot_ode_bridge = process_conformance("i2sb", {"interval": 100, "ot_ode": True}, ends=(), continuous=False)
# backward only; on the continuous scheduled bridge (std_fwd(0) = 0) it lands exactly on the end
test_posterior = sampler_conformance("i2sb", {"steps": 4, "grid_size": 100}, process=I2SBBridge(interval=100),
                                     landing_process=ScheduledBridge(), directions=("backward",))
