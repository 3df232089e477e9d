"""The scheduler's view of a request and a host, for nova-gpu-ext.

Layer rule: adapter. Turns a ``RequestSpec`` and a ``HostState`` into the
core's inputs (``specs.GPURequest``, the published host summary), the same
way the compute driver does, so both sides decide from the same facts.
"""

from oslo_log import log as logging

from nova_gpu_ext import host_facts
from nova_gpu_ext import specs

LOG = logging.getLogger(__name__)


def gpu_request(spec_obj):
    """The flavor's ``gpu:`` request; invalid entries are logged, ignored.

    The API refuses invalid ``gpu:`` specs; a flavor created before the
    validators were installed (or below microversion 2.86) can still hold
    one, and the compute driver ignores it the same way.
    """
    flavor = getattr(spec_obj, 'flavor', None)
    extra_specs = getattr(flavor, 'extra_specs', None) or {}
    return specs.parse(
        extra_specs,
        on_error=lambda exc: LOG.warning(
            'Ignoring invalid flavor extra spec: %s', exc))


def host_summary(host_state):
    """What the host's nova-gpu-ext driver published, or None."""
    return host_facts.summary_from_stats(getattr(host_state, 'stats', None))
