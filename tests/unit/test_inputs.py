"""The tenant-input resolver: flavor bounds, narrowed never widened."""

from nova_gpu_ext.core import inputs

VGPU = {'resources:VGPU': '1'}


def resolve(flavor=None, image=None, ports=(), default='preferred'):
    specs = dict(VGPU)
    specs.update(flavor or {})
    return inputs.resolve(specs, image or {}, ports, default)


def test_no_tenant_input_keeps_the_operator_policy():
    r = resolve({'gpu:numa_affinity_policy': 'socket'})
    assert (r.policy, r.policy_source) == (
        'socket', 'flavor gpu:numa_affinity_policy')
    assert r.notes == () and r.numa_cells == 0 and r.admits_sharing


def test_a_stricter_image_policy_narrows():
    r = resolve(image={'hw_pci_numa_affinity_policy': 'required'})
    assert r.policy == 'required'
    assert r.policy_source == 'image hw_pci_numa_affinity_policy'
    assert r.bound == 'preferred'
    assert [n.applied for n in r.notes] == [True]


def test_a_looser_image_or_port_policy_is_ignored_and_reported():
    r = resolve({'gpu:numa_affinity_policy': 'required'},
                image={'hw_pci_numa_affinity_policy': 'legacy'},
                ports=[('p1', 'preferred')])
    assert r.policy == 'required'
    assert [str(n) for n in r.ignored] == [
        'image hw_pci_numa_affinity_policy=legacy ignored: looser than '
        'required from flavor gpu:numa_affinity_policy, which tenant input '
        'cannot widen',
        'port p1 numa_affinity_policy=preferred ignored: looser than '
        'required from flavor gpu:numa_affinity_policy, which tenant input '
        'cannot widen']


def test_the_option_default_is_a_bound_too():
    r = resolve(image={'hw_pci_numa_affinity_policy': 'legacy'},
                default='socket')
    assert r.policy == 'socket'
    assert r.ignored[0].why.startswith(
        'looser than socket from [gpu_ext] numa_affinity_policy')


def test_a_port_can_tighten_after_the_image():
    r = resolve(image={'hw_pci_numa_affinity_policy': 'socket'},
                ports=[('p1', 'required'), ('p2', 'preferred')])
    assert (r.policy, r.policy_source) == (
        'required', 'port p1 numa_affinity_policy')
    assert str(r.notes[-1]) == (
        'port p2 numa_affinity_policy=preferred ignored: the stricter '
        'required from port p1 numa_affinity_policy applies')


def test_garbage_policy_is_ignored():
    r = resolve(image={'hw_pci_numa_affinity_policy': 'always'})
    assert r.policy == 'preferred'
    assert r.ignored[0].why == 'not a NUMA affinity policy'


def test_pci_alias_flavor_policy_is_the_bound_for_alias_devices():
    r = inputs.resolve({'pci_passthrough:alias': 'gpu:1',
                        'hw:pci_numa_affinity_policy': 'required'},
                       {'hw_pci_numa_affinity_policy': 'preferred'}, (),
                       'legacy')
    assert (r.bound, r.bound_source) == (
        'required', 'flavor hw:pci_numa_affinity_policy')
    assert r.policy == 'required'


def test_numa_cells_from_flavor_or_image_and_per_cell_needs():
    assert resolve(image={'hw_numa_nodes': '1'}).numa_cells == 1
    assert resolve({'hw:numa_nodes': '2'}).numa_cells == 2
    assert resolve(image={'hw_numa_nodes': 'x'}).numa_cells == 0
    assert resolve(image={'hw_numa_nodes': -3}).numa_cells == 0
    r = resolve({'hw:numa_nodes': '2'})
    needs = r.needs(5, 4096)
    assert (needs.vcpus, needs.memory_mb, needs.policy) == (
        3, 2048, 'preferred')
    whole = resolve().needs(5, 4096)
    assert (whole.vcpus, whole.memory_mb) == (5, 4096)


def test_video_model_is_replaced_with_a_word_for_render_nodes():
    r = resolve({'gpu:render_node': 'numa-local'},
                image={'hw_video_model': 'vga'})
    assert r.video_model == 'virtio'
    assert 'hw_video_model=vga ignored' in str(r.ignored[0])
    assert resolve({'gpu:render_node': 'numa-local'},
                   image={'hw_video_model': 'virtio'}).notes == ()
    # No render node: the image's model is Nova's business.
    assert resolve(image={'hw_video_model': 'vga'}).video_model is None
    assert resolve(image={'hw_video_model': 'vga'}).notes == ()
