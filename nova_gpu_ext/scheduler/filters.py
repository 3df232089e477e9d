"""nova-gpu-ext scheduler filters.

Layer rule: adapter. A filter rebuilds the request from the flavor and the
host's facts from ``HostState`` (published by the driver), asks the core,
and logs why a host was refused at INFO, so an operator can read it in the
scheduler log.

Enable with, in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_gpu_ext.scheduler.filters.GPUExtHostFilter
    enabled_filters = ...,GPUExtHostFilter
"""

from nova.scheduler import filters
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.scheduler import request as sched_request

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


class GPUExtHostFilter(filters.BaseHostFilter):
    """Send flavors that use ``gpu:`` extra specs to nova-gpu-ext hosts.

    A flavor with ``gpu:`` extra specs relies on this project's driver; a
    compute that runs the upstream driver (in a cloud being upgraded host by
    host) would silently ignore them. Such hosts are refused. Flavors
    without ``gpu:`` keys, or with ``gpu:enabled=false``, pass everywhere.
    """

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def host_passes(self, host_state, spec_obj):
        if not CONF.gpu_ext.enabled:
            return True
        request = sched_request.gpu_request(spec_obj)
        if not request.enabled or not request.gpu_keys:
            return True
        if sched_request.host_summary(host_state) is None:
            LOG.info('GPUExtHostFilter: host %s refused: it does not run '
                     'nova-gpu-ext (compute_driver = gpu_ext.GPULibvirtDriver)'
                     ' and the flavor sets %s', host_state.host,
                     ', '.join(request.gpu_keys))
            return False
        return True
