"""Pins of the Nova internals the large-BAR work relies on (issue 22).

Each fails when Nova changes what ``virt/tweaks/address_space.py``,
``scheduler/address_filter.py`` or ``cmd/explain_address.py`` read or
write; listed in doc/source/reference/nova-internals.rst.
"""

import inspect

from lxml import etree
from nova import objects
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver

from nova_gpu_ext.virt.tweaks import address_space


def test_maxphysaddr_config_class_and_our_limit_subclass():
    m = vconfig.LibvirtConfigGuestCPUMaxPhysAddr()
    assert (m.mode, m.bits) == (None, None)
    m.mode, m.bits = 'emulate', 44
    el = etree.fromstring(m.to_xml())
    assert el.tag == 'maxphysaddr'
    assert (el.get('mode'), el.get('bits')) == ('emulate', '44')
    ours = address_space.MaxPhysAddr()
    ours.mode, ours.limit = 'passthrough', 44
    el = etree.fromstring(ours.to_xml())
    assert (el.get('mode'), el.get('limit'), el.get('bits')) == (
        'passthrough', '44', None)


def test_guest_cpu_carries_maxphysaddr_and_features():
    cpu = vconfig.LibvirtConfigGuestCPU()
    assert cpu.maxphysaddr is None and cpu.features == set()
    cpu.mode = 'host-model'
    cpu.maxphysaddr = address_space.MaxPhysAddr()
    cpu.maxphysaddr.mode, cpu.maxphysaddr.bits = 'emulate', 44
    cpu.add_feature(vconfig.LibvirtConfigGuestCPUFeature(
        'pdpe1gb', policy='require'))
    el = etree.fromstring(cpu.to_xml())
    assert el.find('maxphysaddr').get('bits') == '44'
    assert el.find('feature').get('policy') == 'require'


def test_upstream_builds_maxphysaddr_from_flavor_then_image():
    source = inspect.getsource(
        libvirt_driver.LibvirtDriver._get_guest_cpu_config_maxphysaddr)
    for key in ('hw:maxphysaddr_mode', 'hw:maxphysaddr_bits',
                'hw_maxphysaddr_mode', 'hw_maxphysaddr_bits'):
        assert key in source, key
    assert 'cpu.maxphysaddr = self._get_guest_cpu_config_maxphysaddr' in \
        inspect.getsource(libvirt_driver.LibvirtDriver._get_guest_cpu_config)


def test_guest_config_attributes_read():
    guest = vconfig.LibvirtConfigGuest()
    for attr in ('os_firmware', 'os_loader_type', 'os_mach_type', 'memory',
                 'cpu'):
        assert hasattr(guest, attr), attr


def test_request_spec_fields_read_by_the_filter():
    objects.register_all()
    assert 'count' in objects.InstancePCIRequest.fields
    props = objects.ImageMetaProps.fields
    for name in ('hw_firmware_type', 'hw_machine_type',
                 'hw_maxphysaddr_mode', 'hw_maxphysaddr_bits'):
        assert name in props, name
