"""Pins for the Nova internals issue 16's code relies on (see
doc/source/reference/nova-internals.rst, section "Issue 16"). Each fails
when Nova changes what we read."""

import inspect

from nova.api.validation.extra_specs import base as extra_specs_base
from nova import objects
from nova.objects import fields

from nova_gpu_ext.core import numa
from nova_gpu_ext.core import inputs

objects.register_all()


def test_image_properties_we_read_exist_with_the_policy_words():
    props = objects.ImageMetaProps.fields
    for name in inputs.IMAGE_PROPERTIES:
        assert name in props, name
    assert set(fields.PCINUMAAffinityPolicy.ALL) == set(numa.STRICTNESS) \
        == set(numa.WORDS)


def test_request_spec_and_instance_carry_image_and_pci_requests():
    assert {'flavor', 'image', 'pci_requests', 'numa_topology',
            'instance_uuid'} <= set(objects.RequestSpec.fields)
    assert {'flavor', 'pci_requests'} <= set(objects.Instance.fields)
    assert callable(objects.ImageMeta.from_instance)


def test_port_pci_requests_have_no_alias_and_carry_the_port_policy():
    request = objects.InstancePCIRequest(requester_id='port-1',
                                         numa_policy='required')
    assert {'alias_name', 'numa_policy', 'requester_id'} <= set(
        objects.InstancePCIRequest.fields)
    assert request.source == objects.InstancePCIRequest.NEUTRON_PORT
    from nova_gpu_ext.nova_glue import request_inputs
    assert request_inputs.NEUTRON_PORT == \
        objects.InstancePCIRequest.NEUTRON_PORT


def test_extra_spec_validator_validate_is_what_we_override():
    params = list(inspect.signature(
        extra_specs_base.ExtraSpecValidator.validate).parameters)
    assert params == ['self', 'name', 'value']
