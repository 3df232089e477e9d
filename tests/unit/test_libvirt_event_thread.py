"""Issue 21: the RabbitMQ wedge of nova-compute in native threading mode.

Seen on the one-machine cloud (``tests/cloud/test_wedge.py``) and read with
``py-spy dump`` of the wedged nova-compute, on either driver:

1. In native threading mode (Nova 34's default) Nova's
   ``_ThreadingLibvirtEventHandler._queue_event`` runs the lifecycle handler
   *on libvirt's event loop thread*. With RabbitMQ down, the handler's RPC
   call to the conductor (``handle_lifecycle_event`` -> ``instance.save``)
   waits for RabbitMQ, so nothing answers libvirtd's keepalive probes and
   libvirtd closes the connection after about 30 s.
2. The next thread to use the connection (the periodic
   ``_sync_power_states``) holds ``Host._wrapped_conn_lock`` in
   ``Host._get_connection`` and calls ``_test_connection`` ->
   ``getLibVersion``; libvirt-python finds the connection closed and runs
   the close callback *in that thread, inside the call*::

       Host._connection_closed (nova/virt/libvirt/host.py:508)
       _ThreadingLibvirtEventHandler._queue_event (host.py:272)
       Host._close_callback (host.py:466)
       virConnect._dispatchCloseCallback (libvirt.py:6318)
       virConnect.getLibVersion (libvirt.py:4666)
       Host._test_connection (host.py:471)
       Host._get_connection (host.py:613)

   ``_connection_closed`` takes ``_wrapped_conn_lock``, which that same
   thread holds (a ``threading.Lock``): it waits for ever, and so does
   every later libvirt call (builds stay in BUILD; the service is "up").

In eventlet mode Nova queues both kinds of event for another thread
instead. ``nova_gpu_ext.nova_glue.libvirt_events`` does the same in native
mode (``[gpu_ext] libvirt_event_thread``). These tests run both handlers in
a native-threading child process against a connection that behaves as
libvirt-python's did in the dump: its call runs the close callback, then
raises the RPC error.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

SCENARIO = r'''
import json, os, sys, threading, time, types
os.environ['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
from nova import utils
from nova.virt import event as virtevent
from nova.virt.libvirt import host as nova_host
assert utils.concurrency_mode_threading()

# libvirt-python's names that Host uses here (no libvirt in this venv).
libvirt = types.ModuleType('libvirt')
class libvirtError(Exception):
    def __init__(self, code, domain):
        super().__init__('internal error: client socket is closed')
        self.code, self.domain = code, domain
    def get_error_code(self):
        return self.code
    def get_error_domain(self):
        return self.domain
libvirt.libvirtError = libvirtError
libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR = 38, 1
libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC = 19, 39
libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE = 1
libvirt.virEventRegisterDefaultImpl = lambda: None
libvirt.virEventRunDefaultImpl = lambda: time.sleep(0.05)
nova_host.libvirt = libvirt

mode, scenario = sys.argv[1], sys.argv[2]
release = threading.Event()
handled = []
def lifecycle_handler(event):
    # The compute manager's handler, with RabbitMQ down: its RPC call
    # to the conductor waits until RabbitMQ is back.
    release.wait(30)
    handled.append(event.transition)
service_events = []
host = nova_host.Host(
    'qemu:///system',
    conn_event_handler=lambda enabled, reason: service_events.append(enabled),
    lifecycle_event_handler=lifecycle_handler)
if mode == 'ours':
    from nova_gpu_ext.nova_glue import wraps
    assert wraps.install_event_handler(host)
host._event_handler.start()

def in_thread(fn, timeout):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    return (not t.is_alive()), out

result = {}
if scenario == 'close_in_call':
    class ClosedByLibvirtd:
        """The connection libvirtd closed (keepalive): libvirt-python runs
        the close callback inside the next call, then raises."""
        def getLibVersion(self):
            host._close_callback(
                self, libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE, None)
            raise libvirtError(libvirt.VIR_ERR_SYSTEM_ERROR,
                               libvirt.VIR_FROM_RPC)
    fresh = object()
    host._wrapped_conn = ClosedByLibvirtd()
    host._get_new_connection = lambda: fresh
    returned, out = in_thread(host._get_connection, 5)
    result['returned'] = returned
    result['reconnected'] = out == [fresh]
    if returned:
        # Every event handled, then what the compute service was told, in
        # order (Nova's connection-event thread, run here by hand).
        done, _ = in_thread(host._event_handler._events.join, 5)
        while done and host._conn_event_handler_queue.qsize():
            host._dispatch_conn_event()
        result['service_events'] = service_events
        result['lock_free'] = host._wrapped_conn_lock.acquire(timeout=1)
elif scenario == 'handler_blocks':
    event = virtevent.LifecycleEvent(
        'a3b1c5d2-0e4f-4a6b-9c8d-7e6f5a4b3c2d',
        virtevent.EVENT_LIFECYCLE_PAUSED)
    # What libvirt's event loop thread does with the event.
    returned, _ = in_thread(
        lambda: host._event_handler._queue_event(event), 2)
    result['loop_free'] = returned
    release.set()
    deadline = time.monotonic() + 5
    while not handled and time.monotonic() < deadline:
        time.sleep(0.01)
    result['handled'] = handled == [virtevent.EVENT_LIFECYCLE_PAUSED]
print('RESULT=' + json.dumps(result), flush=True)
os._exit(0)
'''


def run(mode, scenario):
    env = dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='1')
    proc = subprocess.run(
        [sys.executable, '-c', SCENARIO, mode, scenario], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith('RESULT=')]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len('RESULT='):])


def test_upstream_deadlocks_when_the_close_is_found_under_the_lock():
    """The pin: Nova's native handler still deadlocks. When this fails,
    Nova fixed it: read the fix and retire ours (docs: nova-internals)."""
    assert run('upstream', 'close_in_call') == {
        'returned': False, 'reconnected': False}


def test_ours_reconnects_when_the_close_is_found_under_the_lock():
    assert run('ours', 'close_in_call') == {
        'returned': True, 'reconnected': True,
        # "Connection to libvirt lost" (from _test_connection), then up
        # again (the new connection); the close of the replaced connection,
        # handled after, does not disable the service again.
        'service_events': [False, True], 'lock_free': True}


def test_upstream_runs_the_handler_on_libvirts_event_loop():
    """The root of the outage: libvirt's loop waits for the handler (and
    its RPC call), so nothing answers libvirtd's keepalive."""
    assert run('upstream', 'handler_blocks') == {
        'loop_free': False, 'handled': True}


def test_ours_leaves_libvirts_event_loop_free():
    assert run('ours', 'handler_blocks') == {
        'loop_free': True, 'handled': True}


@pytest.mark.parametrize('enabled,option,expected', [
    (True, True, True), (True, False, False), (False, True, False)])
def test_install_follows_the_options(enabled, option, expected):
    from nova_gpu_ext import conf as gpu_conf
    from nova_gpu_ext.nova_glue import libvirt_events

    conf = gpu_conf.CONF
    conf.set_override('enabled', enabled, group='gpu_ext')
    conf.set_override('libvirt_event_thread', option, group='gpu_ext')
    try:
        assert libvirt_events.wanted(conf) is expected
    finally:
        conf.clear_override('enabled', group='gpu_ext')
        conf.clear_override('libvirt_event_thread', group='gpu_ext')


def test_not_started_handles_inline_as_nova_does():
    """Nova's functional harness never starts the event loop (it mocks
    ``Host._init_events``) and its fake libvirt emits events on the
    caller's thread: there, ours handles them inline, as Nova's does."""
    from nova.virt import event as virtevent

    from nova_gpu_ext.nova_glue import libvirt_events

    seen = []
    handler = libvirt_events.QueuedEventHandler(
        lambda *args: seen.append(args), seen.append, lambda: None)
    event = virtevent.LifecycleEvent(
        'a3b1c5d2-0e4f-4a6b-9c8d-7e6f5a4b3c2d',
        virtevent.EVENT_LIFECYCLE_STARTED)
    handler._queue_event(event)
    assert seen == [event]
