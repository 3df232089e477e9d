"""Core options of nova-gpu-ext: the ``[gpu_ext]`` group itself."""

from oslo_config import cfg

gpu_ext_group = cfg.OptGroup(
    'gpu_ext',
    title='nova-gpu-ext options',
    help="""
Options for nova-gpu-ext, the GPU extension of the libvirt driver
(``compute_driver = gpu_ext.GPULibvirtDriver``), its scheduler filters and
weighers, and its flavor extra specs (the ``gpu:`` namespace).
""")

ALL_OPTS = [
    cfg.BoolOpt(
        'enabled',
        default=True,
        help="""
Master switch for every change nova-gpu-ext makes to guests.

When false, ``GPULibvirtDriver`` defines exactly the domain XML the upstream
libvirt driver defines, and the nova-gpu-ext filters pass every host. Use it
to rule nova-gpu-ext out when debugging.

Possible values:

* True: GPU guests get nova-gpu-ext's placement and domain XML changes.
* False: behave exactly as the upstream libvirt driver.

Related options:

* A flavor can opt out alone with the extra spec ``gpu:enabled=false``.
"""),
    cfg.FloatOpt(
        'gpu_host_avoidance_weight_multiplier',
        default=1.0,
        help="""
Multiplier for ``GPUHostAvoidanceWeigher``.

The weigher keeps GPU hosts free for GPU work: a request that asks for no
GPU weighs hosts that have GPUs lower, in proportion to how many GPUs they
have. Requests that ask for a GPU are not affected.

Possible values:

* A positive number: avoid GPU hosts for non-GPU guests (the larger, the
  stronger compared with the other weighers).
* 0.0: disable the weigher.
* A negative number: prefer GPU hosts for non-GPU guests.

Related options:

* ``[filter_scheduler] weight_classes`` must list
  ``nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher``.
"""),
    cfg.BoolOpt(
        'libvirt_event_thread',
        default=True,
        help="""
Handle libvirt's guest lifecycle and connection-closed events on a thread of
nova-gpu-ext's instead of libvirt's event loop thread (native threading mode,
Nova 34's default; eventlet mode already does so).

Nova 34 in native threading mode runs the lifecycle event handler on
libvirt's event loop thread. When RabbitMQ is down for longer than libvirt's
keepalive (about 30 s) while a guest changes state, the handler waits for
RabbitMQ, libvirtd closes the connection, and nova-compute deadlocks on its
libvirt connection lock: the service stays "up" and new builds stay in
BUILD until nova-compute is restarted. With this option the loop only
queues the events, so it keeps answering libvirtd, and the close of a
connection is handled without that lock held.

Possible values:

* True: queue libvirt's events for a thread of ours (guests with and
  without a GPU alike).
* False: Nova's own handling (restart nova-compute after such a wedge).

Related options:

* ``[gpu_ext] enabled = false`` turns this off too (upstream's behaviour).
* ``[DEFAULT] rpc_response_timeout`` bounds each RPC call of the handler.
"""),
]


def register_opts(conf):
    conf.register_group(gpu_ext_group)
    conf.register_opts(ALL_OPTS, group=gpu_ext_group)


def list_opts():
    return [(gpu_ext_group, ALL_OPTS)]
