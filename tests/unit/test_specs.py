"""The gpu: spec table and its one parser."""

import pytest

from nova_gpu_ext.core import spec as specs


@pytest.mark.parametrize('key,value,expected', [
    ('gpu:enabled', 'false', False),
    ('gpu:enabled', 'Yes', True),
    ('gpu:numa_affinity_policy', 'socket', 'socket'),
    ('gpu:render_node', 'numa-local', 'numa-local'),
    ('gpu:placement', 'spread', 'spread'),
    ('gpu:min_share_percent', '25', 25),
    ('gpu:tweak:bootmenu_off', 'off', False),
])
def test_valid_values_are_typed(key, value, expected):
    assert specs.validate(key, value) == expected


@pytest.mark.parametrize('key,value,message', [
    ('gpu:nonsense', '1', "Unknown extra spec 'gpu:nonsense'"),
    ('gpu:numa_affinity_policy', 'strict',
     'one of: required, socket, preferred, legacy'),
    ('gpu:min_share_percent', '101', 'an integer >= 1 and <= 100'),
    ('gpu:min_share_percent', 'half', "'gpu:min_share_percent'"),
    ('gpu:enabled', 'maybe', 'a boolean'),
    ('gpu:tweak:Bad', 'true', "Unknown extra spec 'gpu:tweak:Bad'"),
])
def test_invalid_values_name_key_and_allowed_values(key, value, message):
    with pytest.raises(specs.InvalidExtraSpec) as exc:
        specs.validate(key, value)
    assert message in str(exc.value)
    assert key in str(exc.value)


def test_parse_collects_devices_and_switches():
    request = specs.parse({
        'resources:VGPU': '1',
        'resources1:VGPU': '2',
        'pci_passthrough:alias': 'a100:2, t4',
        'resources:CUSTOM_PCI_10DE_1EB8': '1',
        'gpu:numa_affinity_policy': 'required',
        'gpu:tweak:no_usb': 'false',
        'hw:numa_nodes': '1',
    })
    assert request.vgpus == 3
    assert request.pci_aliases == (('a100', 2), ('t4', 1))
    assert request.custom_resources == (('CUSTOM_PCI_10DE_1EB8', 1),)
    assert request.numa_affinity_policy == 'required'
    assert request.tweak('no_usb') is False
    assert request.tweak('bootmenu_off') is None
    assert request.is_gpu_guest
    assert request.gpu_keys == ('gpu:numa_affinity_policy',
                                'gpu:tweak:no_usb')


def test_plain_flavor_is_not_a_gpu_guest():
    request = specs.parse({'hw:numa_nodes': '2'})
    assert not request.is_gpu_guest
    assert request.gpu_keys == ()


def test_render_node_alone_makes_a_gpu_guest_unless_disabled():
    assert specs.parse({'gpu:render_node': 'numa-local'}).is_gpu_guest
    assert not specs.parse({'gpu:render_node': 'none'}).is_gpu_guest
    assert not specs.parse({'gpu:render_node': 'numa-local',
                            'gpu:enabled': 'false'}).is_gpu_guest


def test_parse_raises_or_reports_errors():
    bad = {'gpu:placement': 'random', 'resources:VGPU': '1'}
    with pytest.raises(specs.InvalidExtraSpec):
        specs.parse(bad)
    seen = []
    request = specs.parse(bad, on_error=seen.append)
    assert request.placement is None and request.vgpus == 1
    assert len(seen) == 1 and 'gpu:placement' in str(seen[0])


def test_licence_class_or_nic_alias_is_not_a_gpu_guest_by_itself():
    licence = specs.parse({'resources:CUSTOM_LICENCE_MATLAB': '1'})
    nic = specs.parse({'pci_passthrough:alias': 'i210-nic:1'})
    for request in (licence, nic):
        assert not request.is_gpu_guest
        # The scheduler still maps such candidates to GPUs, if any.
        assert request.may_use_gpu
        # Only a GPU among the guest's devices makes it a GPU guest.
        assert not specs.gpu_guest(request, 0)
        assert specs.gpu_guest(request, 1)
    assert not specs.gpu_guest(specs.parse({
        'pci_passthrough:alias': 't4', 'gpu:enabled': 'false'}), 1)
    assert specs.gpu_guest(specs.parse({'resources:VGPU': '1'}), 0)


def test_spice_gl_is_refused_with_the_reason():
    """QEMU 7.2 here: "SPICE GL support is local-only for now and
    incompatible with -spice port/tls-port"; Nova's SPICE listens on TCP."""
    with pytest.raises(specs.InvalidExtraSpec) as err:
        specs.validate('gpu:display', 'spice-gl')
    message = str(err.value)
    assert 'gpu:display' in message and 'UNIX socket' in message
    assert 'egl-headless' in message and 'none' in message
    # A flavor created before: the services ignore the entry (warning).
    errors = []
    request = specs.parse({'gpu:display': 'spice-gl',
                           'gpu:render_node': 'numa-local'},
                          on_error=errors.append)
    assert request.display is None and request.wants_render_node
    assert len(errors) == 1
