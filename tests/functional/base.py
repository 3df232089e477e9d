"""The functional tests' base: the same harness the demo runs."""

from nova_gpu_ext.sim.harness import *  # noqa: F401,F403
from nova_gpu_ext.sim.harness import GPUExtTestBase  # noqa: F401
