"""The Nova API validators are generated from the spec table."""

import pytest
from nova.api.validation.extra_specs import validators as nova_validators
from nova import exception

from nova_gpu_ext.api import extra_specs
from nova_gpu_ext.core import spec as specs


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


def test_installed_tweaks_come_from_the_entry_points():
    names = extra_specs.installed_tweaks()
    assert 'boot_menu_off' in names and 'prealloc_threads' in names
    assert names == sorted(names)


def test_unknown_tweak_name_is_refused_naming_the_installed_tweaks():
    # A typo (prealloc_thread for prealloc_threads) used to pass: the
    # operator believed the tweak was off while it stayed on.
    with pytest.raises(exception.ValidationError) as exc:
        nova_validators.validate('gpu:tweak:prealloc_thread', 'false')
    message = str(exc.value)
    assert "'prealloc_thread'" in message
    assert 'installed tweaks' in message
    for name in extra_specs.installed_tweaks():
        assert name in message
    nova_validators.validate('gpu:tweak:prealloc_threads', 'false')


def test_known_tweak_with_a_bad_value_still_names_the_key():
    with pytest.raises(exception.ValidationError) as exc:
        nova_validators.validate('gpu:tweak:no_balloon', 'perhaps')
    assert 'gpu:tweak:no_balloon' in str(exc.value)


def test_the_pure_validator_checks_tweaks_only_when_told_the_names():
    assert specs.validate('gpu:tweak:anything', 'true') is True
    with pytest.raises(specs.InvalidExtraSpec) as exc:
        specs.validate('gpu:tweak:anything', 'true', known_tweaks=['a', 'b'])
    assert 'installed tweaks: a, b' in str(exc.value)
    with pytest.raises(specs.InvalidExtraSpec) as exc:
        specs.validate('gpu:tweak:anything', 'true', known_tweaks=[])
    assert 'installed tweaks: none' in str(exc.value)
