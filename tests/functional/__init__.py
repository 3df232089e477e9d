"""Functional tests on Nova's own in-process harness.

Nova must choose its concurrency mode before anything else imports it, as
``nova/tests/functional/__init__.py`` does. Like Nova 34's nova-compute,
conductor and scheduler (``monkey_patch.patch(backend='threading')``), the
default is native threading (:mod:`nova_gpu_ext.sim.concurrency`);
``OS_NOVA_DISABLE_EVENTLET_PATCHING=0`` selects eventlet (CI runs both).
Run this package in its own test process, apart from ``tests/unit``.
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on
