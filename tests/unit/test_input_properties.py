"""Property-based: filter and driver read tenant input the same way, and
no flavor x image x port combination skips the sharing admission.

The adapters are exercised with real Nova objects (``RequestSpec`` for the
scheduler; ``Instance`` and ``ImageMeta`` for the compute), then the core:
for a vGPU flavor the filter passes a host whose only GPU has ``n`` tenants
exactly when the compute's admission (:func:`sharing.admit`) admits one
more, whatever the image says (``hw_numa_nodes`` included).
"""

import json
from unittest import mock

from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
from nova import objects
from oslo_config import fixture as config_fixture
import pytest

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.core import numa
from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.core import sharing
from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.scheduler import usage as gpu_usage
from nova_gpu_ext.scheduler import request as sched_request
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.virt import driver as gpu_driver

objects.register_all()

POLICIES = list(numa.STRICTNESS)
MAYBE_POLICY = st.none() | st.sampled_from(POLICIES)
RP = '6a2f0f4e-0d5b-4f0e-9e1c-1f3d6a7b8c9d'
MDEV_TYPE = 'nvidia-11'

SETTINGS = settings(
    max_examples=200, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.function_scoped_fixture])


@st.composite
def flavor_specs(draw, vgpu=None):
    extra = {}
    device = draw(st.sampled_from(['vgpu', 'alias', 'none'])
                  if vgpu is None else st.just('vgpu'))
    if device == 'vgpu':
        extra['resources:VGPU'] = '1'
    elif device == 'alias':
        extra['pci_passthrough:alias'] = 'a1:1'
    for key, values in (
            ('gpu:numa_affinity_policy', MAYBE_POLICY),
            ('hw:pci_numa_affinity_policy', MAYBE_POLICY),
            ('gpu:placement', st.none() | st.sampled_from(specs.PLACEMENTS)),
            ('gpu:render_node',
             st.none() | st.sampled_from(specs.RENDER_NODE_MODES)),
            ('gpu:min_share_percent',
             st.none() | st.integers(1, 100).map(str)),
            ('hw:numa_nodes', st.none() | st.sampled_from(['1', '2']))):
        value = draw(values)
        if value is not None:
            extra[key] = value
    return extra


@st.composite
def image_props(draw, flavor):
    props = {}
    cells = draw(st.none() | st.sampled_from([1, 2]))
    if cells is not None:
        props['hw_numa_nodes'] = cells
    # Nova refuses an image policy that contradicts the flavor's
    # hw:pci_numa_affinity_policy (ImagePCINUMAPolicyForbidden).
    policy = draw(MAYBE_POLICY)
    if policy is not None and flavor.get(
            'hw:pci_numa_affinity_policy') in (None, policy):
        props['hw_pci_numa_affinity_policy'] = policy
    video = draw(st.none() | st.sampled_from(['vga', 'virtio', 'qxl',
                                              'none']))
    if video is not None:
        props['hw_video_model'] = video
    return props


PORTS = st.lists(st.tuples(st.uuids().map(str), MAYBE_POLICY), max_size=3)


def nova_objects(extra, props, ports):
    flavor = objects.Flavor(vcpus=2, memory_mb=2048, extra_specs=extra,
                            root_gb=1, ephemeral_gb=0, swap=0)
    image = objects.ImageMeta.from_dict({'properties': props})
    requests = []
    for port, policy in ports:
        request = objects.InstancePCIRequest(
            count=1, spec=[{'physical_network': 'net'}],
            request_id=port, requester_id=port)
        if policy is not None:
            request.numa_policy = policy
        requests.append(request)
    pci = objects.InstancePCIRequests(requests=requests)
    spec = objects.RequestSpec(flavor=flavor, image=image, pci_requests=pci,
                               instance_uuid=RP)
    instance = objects.Instance(flavor=flavor, pci_requests=pci)
    return spec, instance, image


@pytest.fixture
def conf():
    fixture = config_fixture.Config(gpu_conf.CONF)
    fixture.setUp()
    sharing_conf.register_dynamic_opts(gpu_conf.CONF, [MDEV_TYPE])
    yield fixture
    fixture.cleanUp()


@SETTINGS
@given(st.data(), st.sampled_from(POLICIES))
def test_filter_and_driver_resolve_the_same_request(data, default):
    extra = data.draw(flavor_specs())
    props = data.draw(image_props(extra))
    ports = data.draw(PORTS)
    spec, instance, image = nova_objects(extra, props, ports)
    request = specs.parse(extra)
    at_scheduler = sched_request.resolved(spec, request, default)
    with mock.patch.object(gpu_driver.CONF.gpu_ext, 'numa_affinity_policy',
                           default):
        at_compute = gpu_driver.GPULibvirtDriver._gpu_inputs(
            None, instance, request, image)
    assert at_scheduler == at_compute
    # Narrow, never widen: never looser than the operator's bound.
    assert numa.STRICTNESS[at_scheduler.policy] >= \
        numa.STRICTNESS[at_scheduler.bound]
    assert at_scheduler.admits_sharing == request.is_gpu_guest


class FakeHost:
    host = 'gpu-host'
    numa_topology = None
    cpu_allocation_ratio = 1.0

    def __init__(self, tenants, capacity):
        summary = {
            'v': 1,
            'nodes': [{'id': 0, 'socket': 0, 'cpus': 64, 'mem_mb': 262144},
                      {'id': 1, 'socket': 1, 'cpus': 64, 'mem_mb': 262144}],
            'gpus': [{'addr': '0000:81:00.0', 'kind': 'mdev_parent',
                      'node': 0, 'socket': 0, 'vendor': '10de',
                      'device': '13f2', 'rp': RP, 'used': tenants,
                      'mdev_types': {MDEV_TYPE: capacity - tenants}}],
            'render_nodes': [{'name': 'renderD128',
                              'path': '/dev/dri/renderD128', 'node': 0,
                              'guests': 0}]}
        self.stats = {'gpu_ext': json.dumps(summary)}
        self.allocation_candidates = [
            {'allocations': {RP: {'resources': {'VGPU': 1}}}}]


@SETTINGS
@given(st.data(), st.integers(0, 12), st.sampled_from([1, 10, 100, 250]))
def test_no_image_skips_the_sharing_admission(conf, data, tenants, slice_ms):
    extra = data.draw(flavor_specs(vgpu=True))
    props = data.draw(image_props(extra))
    ports = data.draw(PORTS)
    conf.config(slice_ms=slice_ms, switch_ms=0,
                group='gpu_sharing_%s' % MDEV_TYPE)
    spec, _instance, _image = nova_objects(extra, props, ports)
    if props.get('hw_numa_nodes') or extra.get('hw:numa_nodes'):
        cells = int(props.get('hw_numa_nodes') or extra['hw:numa_nodes'])
        spec.numa_topology = objects.InstanceNUMATopology(cells=[
            objects.InstanceNUMACell(id=i, cpuset=set(), pcpuset=set(),
                                     memory=2048 // cells)
            for i in range(cells)])
    else:
        spec.numa_topology = None     # as Nova sets it for such a guest
    request = specs.parse(extra)
    host = FakeHost(tenants, capacity=64)
    with mock.patch.object(gpu_usage, 'current', return_value=None):
        passed = filters.GPUPlacementFilter().host_passes(host, spec)
    profile = sharing_conf.profile_for(gpu_conf.CONF, MDEV_TYPE)
    admitted = sharing.admit(profile, tenants, request.min_share).ok
    assert passed == admitted, (extra, props, tenants)
