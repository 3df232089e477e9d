"""The rendered documentation names everything the code defines.

Layer rule: test of the docs build. Runs in ``tox -e docs`` after
``sphinx-build`` (which wrote ``doc/build/html``); run alone, it builds the
docs into a temp dir first. Every expectation comes from the code: the
options of ``nova_gpu_ext.conf.list_opts()``, the keys of
``nova_gpu_ext.core.spec.SPEC_TABLE``, the installed domain tweaks and the
subcommands of ``nova-gpu-ext``.
"""

import html
import pathlib
import re

import pytest

sphinx_app = pytest.importorskip(
    'sphinx.application', reason='Sphinx is not installed (tox -e docs)')

from nova_gpu_ext import conf as gpu_conf  # noqa: E402
from nova_gpu_ext.core import spec as specs  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = REPO / 'doc' / 'source'
BUILT = REPO / 'doc' / 'build' / 'html'


@pytest.fixture(scope='module')
def html_dir(tmp_path_factory):
    if (BUILT / 'index.html').is_file() and all(
            (BUILT / src.relative_to(SOURCE)).with_suffix('.html').is_file()
            for src in SOURCE.rglob('*.rst')):
        return BUILT
    out = tmp_path_factory.mktemp('html')
    app = sphinx_app.Sphinx(
        str(SOURCE), str(SOURCE), str(out), str(out / '.doctrees'), 'html',
        warningiserror=True, freshenv=True, status=None)
    app.build()
    assert app.statuscode == 0
    return out


def _text(html_dir, page):
    raw = (html_dir / page).read_text()
    return html.unescape(re.sub(r'<[^>]+>', '', raw)), raw


def test_every_option_is_in_the_configuration_reference(html_dir):
    text, raw = _text(html_dir, 'configuration.html')
    count = 0
    for group, opts in gpu_conf.list_opts():
        group_name = getattr(group, 'name', group)
        for opt in opts:
            anchor = '%s.%s' % (group_name.lower(), opt.dest.lower())
            # Rendered by oslo_config.sphinxext as an anchored entry...
            assert 'id="%s"' % anchor in raw, anchor
            # ... and present in the generated sample file.
            assert re.search(r'^#?%s =( |$)' % re.escape(opt.dest), text,
                             re.M), opt.dest
            count += 1
    assert count >= 2


def test_every_extra_spec_is_in_the_reference(html_dir):
    text, _raw = _text(html_dir, 'extra-specs.html')
    for row in specs.SPEC_TABLE:
        assert row.key in text, row.key
        assert row.allowed().split(':')[0] in text
        # The help text, with `word` rendered as code.
        words = re.sub(r'`', '', row.description).split()
        assert ' '.join(words[:6]) in ' '.join(text.split()), row.key
        for value in row.enum:
            assert value in text


def test_every_tweak_is_on_the_fast_boot_page(html_dir):
    from nova_gpu_ext.virt import tweaks
    text, _raw = _text(html_dir, 'admin/fast-boot.html')
    found = tweaks.load_tweaks()
    assert found
    for name in found:
        assert name in text, name


def test_every_subcommand_is_in_the_cli_reference(html_dir):
    import argparse
    from nova_gpu_ext.cmd import main
    text, _raw = _text(html_dir, 'cli.html')
    parser = main.build_parser()
    names = [name for action in parser._actions
             if isinstance(action, argparse._SubParsersAction)
             for name in action.choices]
    assert names
    for name in names:
        assert 'nova-gpu-ext %s' % name in text, name


def _scheduler_classes():
    """Every filter and weigher class nova-gpu-ext defines, by dotted path.
    """
    import inspect
    from nova.scheduler import filters as nova_filters
    from nova.scheduler import weights as nova_weights
    from nova_gpu_ext.scheduler import filters
    from nova_gpu_ext.scheduler import weighers
    found = {'filter': [], 'weigher': []}
    for module, base, kind in (
            (filters, nova_filters.BaseHostFilter, 'filter'),
            (weighers, nova_weights.BaseHostWeigher, 'weigher')):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            # Private names are skipped, as Nova's loadables skip them.
            if issubclass(cls, base) and cls.__module__ == module.__name__ \
                    and not name.startswith('_'):
                found[kind].append('%s.%s' % (module.__name__, name))
    return found


# Features that have landed: their pages must not be marked unavailable.
LANDED_PAGES = ('admin/numa-affinity.html', 'admin/sharing.html',
                'troubleshooting.html')


def test_landed_features_are_not_marked_unavailable(html_dir):
    for page in LANDED_PAGES:
        text, _raw = _text(html_dir, page)
        for mark in ('Not yet available', 'Partly available'):
            assert mark not in text, (page, mark)


def _ini_lines(text, key):
    return [line.strip() for line in text.splitlines()
            if re.match(r'\s*%s\s*=' % re.escape(key), line)]


def _check_scheduler_config(text, where):
    """One weight_classes line with Nova's and every weigher of ours; an
    available_filters line and an enabled_filters entry per filter."""
    classes = _scheduler_classes()
    assert classes['filter'] and classes['weigher']
    weight_lines = _ini_lines(text, 'weight_classes')
    # A second weight_classes line replaces the first (ListOpt).
    assert len(weight_lines) == 1, (where, weight_lines)
    weighers = [w.strip() for w in
                weight_lines[0].split('=', 1)[1].split(',')]
    assert 'nova.scheduler.weights.all_weighers' in weighers, where
    for path in classes['weigher']:
        assert path in weighers, (where, path)
    available = [line.split('=', 1)[1].strip()
                 for line in _ini_lines(text, 'available_filters')]
    assert 'nova.scheduler.filters.all_filters' in available, where
    enabled_lines = _ini_lines(text, 'enabled_filters')
    assert len(enabled_lines) == 1, (where, enabled_lines)
    enabled = [f.strip() for f in
               enabled_lines[0].split('=', 1)[1].split(',')]
    for path in classes['filter']:
        assert path in available, (where, path)
        assert path.rsplit('.', 1)[1] in enabled, (where, path)


def test_install_page_enables_every_filter_and_weigher(html_dir):
    text, _raw = _text(html_dir, 'install.html')
    _check_scheduler_config(text, 'install.html')


def test_readme_enables_every_filter_and_weigher():
    text = (REPO / 'README.md').read_text()
    _check_scheduler_config(text, 'README.md')
