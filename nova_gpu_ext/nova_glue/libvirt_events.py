"""libvirt's events handled off libvirt's event loop, in native threading mode.

Layer rule: Nova glue. The handler class; :func:`.wraps.install_event_handler`
gives it to ``GPULibvirtDriver``'s own ``Host`` (``Host._event_handler``)
before the driver's ``init_host`` starts it; Nova's classes and modules are
left as they are.

Why (issue 21, read from a wedged nova-compute with ``py-spy dump``): in
native threading mode, Nova 34's ``_ThreadingLibvirtEventHandler`` runs the
lifecycle handler on libvirt's event loop thread, so a handler waiting for
RabbitMQ (its RPC call to the conductor) stops that loop; libvirtd, its
keepalive unanswered, closes the connection; the next thread that finds the
connection closed does so inside ``Host._get_connection``, holding
``Host._wrapped_conn_lock``, and libvirt-python runs the close callback in
that thread, where ``Host._connection_closed`` waits for the same lock for
ever. nova-compute stays "up" and builds stay in BUILD. Nova's eventlet
mode does not wedge: it queues both kinds of event for another thread.

:class:`QueuedEventHandler` does the same in native mode: libvirt's threads
only put the event on a queue (no logging, no lock of Nova's) and one
thread of ours hands each event to Nova's own handling, in order. The close
of a connection ``Host`` has already replaced is dropped: ``_get_connection``
reported the loss and the new connection itself, and a late "lost" would
disable the compute service until the next reconnection.
``tests/unit/test_libvirt_event_thread.py`` pins Nova's deadlock and this fix.
"""

import queue
import threading

from nova.virt.libvirt import host as nova_host
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

THREAD_NAME = 'gpu-ext-libvirt-events'


def wanted(conf):
    """Is the handler to be installed (``[gpu_ext] enabled`` and
    ``[gpu_ext] libvirt_event_thread``)?"""
    return bool(conf.gpu_ext.enabled and conf.gpu_ext.libvirt_event_thread)


class QueuedEventHandler(nova_host._ThreadingLibvirtEventHandler):
    """Nova's native-mode handler, with the dispatch moved to a thread."""

    def __init__(self, conn_event_handler, lifecycle_event_handler,
                 current_connection):
        super().__init__(conn_event_handler, lifecycle_event_handler)
        self._current_connection = current_connection
        self._events = queue.Queue()
        self._dispatcher = None

    def start(self):
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch_forever, name=THREAD_NAME,
                daemon=True)
            self._dispatcher.start()
        super().start()

    def _queue_event(self, event):
        """Called on libvirt's event loop thread, or inside any libvirt call
        (the close callback): must not block, log or take a lock of Nova's.

        Before :meth:`start` (Nova's functional harness mocks
        ``Host._init_events``, and its fake libvirt emits events on the
        caller's thread) events are handled as Nova does, inline."""
        if self._dispatcher is None:
            super()._queue_event(event)
            return
        self._events.put(event)

    def _dispatch_forever(self):
        while True:
            event = self._events.get()
            try:
                self._dispatch(event)
            except Exception:   # the next event must still be handled
                LOG.exception('Cannot handle the libvirt event %s', event)
            finally:
                self._events.task_done()

    def _dispatch(self, event):
        if not isinstance(event, dict):
            super()._queue_event(event)
            return
        current = self._current_connection()
        if current is not None and event.get('conn') != current:
            LOG.debug('libvirt closed a connection already replaced (%s)',
                      event.get('reason'))
            return
        super()._queue_event(event)
