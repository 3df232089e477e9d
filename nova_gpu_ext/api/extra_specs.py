"""Validators for the ``gpu:`` flavor extra specs, for nova-api.

Layer rule: adapter. Generated from :data:`nova_gpu_ext.core.spec.SPEC_TABLE`,
the same table the scheduler and driver parse, so the API accepts exactly
what the services understand. Registered through the
``nova.api.extra_spec_validators`` entry point; Nova then answers HTTP 400
for an unknown ``gpu:`` key or a bad value (microversion 2.86 and later),
with our message naming the key and the allowed values. A
``gpu:tweak:<name>`` key is refused unless ``<name>`` is an installed domain
tweak, and the message lists the installed ones.
"""

from importlib import metadata

from nova.api.validation.extra_specs import base
from nova import exception

from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.virt import tweaks


class GPUExtraSpecValidator(base.ExtraSpecValidator):
    """A Nova validator whose messages name the key and allowed values."""

    def validate(self, name, value):
        try:
            specs.validate(name, value, known_tweaks=installed_tweaks())
        except specs.InvalidExtraSpec as exc:
            raise exception.ValidationError(str(exc))


def installed_tweaks():
    """The names of the installed domain tweaks (entry points of the
    ``nova_gpu_ext.domain_tweaks`` namespace; API nodes run the same
    package as the computes). Read from the package metadata, without
    importing the tweaks."""
    return sorted({ep.name for ep in metadata.entry_points(
        group=tweaks.NAMESPACE)})


def _nova_value(row):
    if row.type is bool:
        return {'type': bool, 'description': row.allowed()}
    if row.type is int:
        value = {'type': int, 'description': row.allowed()}
        if row.min is not None:
            value['min'] = row.min
        if row.max is not None:
            value['max'] = row.max
        return value
    value = {'type': str, 'description': row.allowed()}
    if row.enum:
        value['enum'] = list(row.enum)
    return value


def _validators():
    out = [
        GPUExtraSpecValidator(
            name=row.key,
            description=row.description,
            value=_nova_value(row),
            parameters=[{'name': pname, 'pattern': pattern,
                         'description': 'tweak name'}
                        for pname, pattern in row.parameters],
        )
        for row in specs.SPEC_TABLE
    ]
    # Last, so known keys match first: any other gpu: key is refused with
    # the list of known keys (Nova's own message would not list them).
    out.append(GPUExtraSpecValidator(
        name='gpu:{unknown}',
        description='Any other key in the gpu: namespace is refused.',
        value={'type': str, 'description': 'refused'},
        parameters=[{'name': 'unknown', 'pattern': '.*',
                     'description': 'an unknown gpu: key'}],
    ))
    return out


def register():
    return _validators()
