"""GPUAddressSpaceFilter on published host summaries."""

import logging
from unittest import mock

from nova import objects

from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.scheduler import address_filter

GiB = 1 << 30
H100_WINDOW = 256 * GiB     # BAR1 128 GiB + BAR3 32 MiB behind a port


def summary(addr, gpus=4):
    return HostSummary.from_dict(
        {'v': 1, 'nodes': [], 'render_nodes': [], 'warnings': 0,
         'gpus': [{'addr': '0000:%02x:00.0' % (0x1b + i), 'kind': 'whole',
                   'bar64': H100_WINDOW} for i in range(gpus)],
         'addr': addr})


def spec(count=4, memory_mb=16384, firmware='uefi', extra=None):
    objects.register_all()
    flavor = objects.Flavor(memory_mb=memory_mb, vcpus=4,
                            extra_specs=dict(extra or {}))
    image = objects.ImageMeta.from_dict(
        {'properties': {'hw_firmware_type': firmware}})
    pci = objects.InstancePCIRequests(requests=[
        objects.InstancePCIRequest(count=count, alias_name='gpu',
                                   spec=[{}])] if count else [])
    return objects.RequestSpec(flavor=flavor, image=image, pci_requests=pci)


def passes(addr, spec_obj):
    host = mock.Mock(host='gpu-host', stats={})
    with mock.patch.object(address_filter.sched_request, 'host_summary',
                           return_value=summary(addr)):
        return address_filter.GPUAddressSpaceFilter().host_passes(
            host, spec_obj)


def test_host_that_can_address_four_hoppers_passes():
    assert passes([46, 48, True], spec())


def test_39_bit_iommu_host_is_refused_with_the_reason(caplog):
    with caplog.at_level(logging.INFO):
        assert not passes([46, 39, True], spec())
    assert 'refused' in caplog.text
    assert 'IOMMU addresses 39 bits' in caplog.text


def test_no_1g_pages_refuses_uefi_guest_only():
    assert not passes([46, 48, False], spec())
    assert passes([46, 48, False], spec(firmware='bios'))


def test_guest_without_pci_devices_passes_everywhere():
    assert passes([46, 39, True], spec(count=0))


def test_host_without_published_limits_passes():
    assert passes(None, spec())
