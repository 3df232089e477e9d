"""Functional tests on Nova's own in-process harness.

Nova must patch the standard library (eventlet, or native threading when
``OS_NOVA_DISABLE_EVENTLET_PATCHING=1``) before anything else imports it,
exactly as ``nova/tests/functional/__init__.py`` does; run this package in
its own test process, apart from ``tests/unit``.
"""

# autopep8: off
from nova import monkey_patch ; monkey_patch.patch()  # noqa
# autopep8: on
