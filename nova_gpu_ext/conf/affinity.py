"""Options of GPU-to-NUMA affinity and render-node binding."""

from oslo_config import cfg

from nova_gpu_ext.conf import base
from nova_gpu_ext.core import numa

#: what each word of the NUMA rule (nova_gpu_ext.core.numa) does
_DESCRIPTIONS = {
    numa.REQUIRED: 'vCPUs and memory strictly on the GPU\'s NUMA node; '
                   'refused at the scheduler where that cannot hold',
    numa.SOCKET: 'on the GPU\'s node, else on another node of the same '
                 'socket',
    numa.PREFERRED: 'on the GPU\'s node when the guest fits there, '
                    'otherwise anywhere (never refused)',
    numa.LEGACY: 'no binding for guests without a NUMA topology, as '
                 'upstream Nova',
}

ALL_OPTS = [
    cfg.StrOpt(
        'numa_affinity_policy',
        default=numa.DEFAULT,
        choices=[(word, _DESCRIPTIONS[word]) for word in numa.WORDS],
        help="""
NUMA affinity policy for GPU guests whose flavor does not set
``gpu:numa_affinity_policy``.

Applies to every GPU kind: whole GPUs passed through, SR-IOV VFs and
mediated (mdev) vGPUs. For guests without a NUMA topology of their own, the
driver binds vCPUs (``<vcpu cpuset>``) and memory (``<numatune>``) to the
NUMA node of the physical GPU the guest got.

Possible values:

* ``required``, ``socket``, ``preferred``, ``legacy`` (the words of
  ``hw:pci_numa_affinity_policy``).

Related options:

* The flavor extra spec ``gpu:numa_affinity_policy`` overrides it.
* ``[filter_scheduler] enabled_filters`` must include ``GPUPlacementFilter``
  for the scheduler to honour ``required`` and ``socket``.
"""),
    cfg.FloatOpt(
        'gpu_affinity_weight_multiplier',
        default=1.0,
        help="""
Multiplier for ``GPUAffinityWeigher``.

The weigher prefers hosts where a GPU guest gets a GPU on a NUMA node it
fits on, and among those the tightest fit (emptier nodes stay free for
bigger guests). Hosts can override it with the aggregate metadata key of
the same name.

Possible values:

* A positive number: prefer NUMA-local, tight fits (the larger, the
  stronger compared with the other weighers).
* 0.0: disable the weigher.

Related options:

* ``[filter_scheduler] weight_classes`` must list
  ``nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher``; it reads what
  ``GPUPlacementFilter`` computed, so that filter must be enabled too.
"""),
    cfg.IntOpt(
        'render_node_max_guests',
        default=0,
        min=0,
        help="""
Most guests that may share one DRM render node (``gpu:render_node``).

Enforced by the scheduler filter and, when builds race, by the compute
itself, which refuses (and so reschedules) a build beyond the limit.

Possible values:

* 0: no limit.
* A positive integer: the limit per render node.

Related options:

* ``[gpu_ext] numa_affinity_policy``.
"""),
]


def register_opts(conf):
    conf.register_group(base.gpu_ext_group)
    conf.register_opts(ALL_OPTS, group=base.gpu_ext_group)


def list_opts():
    return [(base.gpu_ext_group, ALL_OPTS)]
