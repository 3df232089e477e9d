"""The Nova API validators are generated from the spec table."""

import pytest
from nova.api.validation.extra_specs import validators as nova_validators
from nova import exception

from nova_gpu_ext.api import extra_specs
from nova_gpu_ext import specs


def test_every_table_row_has_a_validator():
    names = {v.name for v in extra_specs.register()}
    assert {row.key for row in specs.SPEC_TABLE} <= names


def test_nova_loads_our_validators_through_the_entry_point():
    # Nova's registry is filled from the nova.api.extra_spec_validators
    # entry points of installed packages: ours must be among them.
    assert 'gpu:numa_affinity_policy' in nova_validators.VALIDATORS
    nova_validators.validate('gpu:placement', 'pack')
    with pytest.raises(exception.ValidationError) as exc:
        nova_validators.validate('gpu:placement', 'scatter')
    assert 'gpu:placement' in str(exc.value)
    with pytest.raises(exception.ValidationError) as exc:
        nova_validators.validate('gpu:bogus', '1')
    assert 'known keys' in str(exc.value)
