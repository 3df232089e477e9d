"""Choose Nova's concurrency mode before anything else imports Nova.

Layer rule: simulation; imports nothing but ``os`` and
``nova.monkey_patch``, so it is safe as the very first import of a process
that starts Nova (the functional tests, the demo, the benchmarks)::

    from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa

Nova 34 starts nova-compute, nova-conductor and nova-scheduler in native
threading mode (``monkey_patch.patch(backend='threading')``); eventlet is
deprecated. We default to the same. ``OS_NOVA_DISABLE_EVENTLET_PATCHING``
still decides when it is set (``0``: eventlet, ``1``: native), which is how
CI runs the functional tests in both modes. The default is written into the
environment, so that Nova's own later ``monkey_patch.patch()`` calls (for
example in ``nova/tests/functional/__init__.py``, whose default is
eventlet) agree instead of failing on a half-patched process.
"""

import os

ENV = 'OS_NOVA_DISABLE_EVENTLET_PATCHING'


def patch():
    """Apply Nova's patch with native threading as the default."""
    os.environ.setdefault(ENV, '1')
    # Lazy: Nova reads the variable when monkey_patch is imported, so it
    # must be set first; importing this module must patch nothing.
    from nova import monkey_patch
    monkey_patch.patch(backend='threading')


def mode():
    """``'native'`` or ``'eventlet'``, as this process runs."""
    # Lazy: see patch(); never import Nova before patch() ran.
    from nova import monkey_patch
    return 'eventlet' if monkey_patch.is_patched() else 'native'
