"""Nova's own libvirt functional test modules, run with our driver.

See :mod:`tests.nova_functional.plugin` and ``tox -e nova-functional``.
"""
