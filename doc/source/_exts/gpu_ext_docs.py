"""Sphinx directives that render nova-gpu-ext's references from its code.

Layer rule: documentation adapter. Nothing here restates a fact of the
code: each directive imports the code at build time and renders what it
finds, so the pages follow the code as it grows.

* ``.. gpu-extra-specs::`` every row of :data:`nova_gpu_ext.core.spec.SPEC_TABLE`
  (key, type, allowed values, parameters, help).
* ``.. gpu-sample-config::`` the sample configuration, as
  ``oslo-config-generator --namespace nova_gpu_ext`` writes it.
* ``.. gpu-tweaks::`` the domain XML tweaks installed in the
  ``nova_gpu_ext.domain_tweaks`` entry-point namespace.
* ``.. gpu-cli::`` the help of ``nova-gpu-ext`` and of every subcommand it
  has.
* ``.. gpu-cli-output:: ARGS`` what ``nova-gpu-ext ARGS`` prints (for
  commands that read no real host, e.g. ``inspect --sample NAME``).

A directive whose code cannot be imported reports a Sphinx warning, which
``sphinx-build -W`` turns into a failed build.
"""

import argparse
import io
import os
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOG = logging.getLogger(__name__)

_TYPE_NAMES = {bool: 'boolean', int: 'integer', str: 'string'}


def _literalize(text):
    """Markdown-style `word` in help texts -> reST ``word``."""
    return re.sub(r'(?<!`)`([^`]+)`(?!`)', r'``\1``', text)


class _GeneratedDirective(SphinxDirective):
    has_content = False

    def render(self):
        raise NotImplementedError

    def run(self):
        try:
            return self.render()
        except Exception as exc:  # any failure must fail the -W build
            LOG.warning('%s: cannot render from the code: %s: %s',
                        self.name, type(exc).__name__, exc,
                        location=self.get_location())
            return []

    def parse_rst(self, lines):
        node = nodes.section()
        node.document = self.state.document
        source = self.get_source_info()[0]
        content = StringList()
        for line in lines:
            content.append(line, source)
        self.state.nested_parse(content, self.content_offset, node,
                                match_titles=True)
        return node.children


class ExtraSpecsDirective(_GeneratedDirective):
    """Every ``gpu:`` extra spec of the spec table."""

    def render(self):
        from nova_gpu_ext.core import spec as specs
        lines = []
        for row in specs.SPEC_TABLE:
            lines += [
                '.. _gpu-extra-spec-%s:' % re.sub(r'[^a-z0-9]+', '-',
                                                  row.name),
                '',
                '``%s``' % row.key,
                '   :Type: %s' % _TYPE_NAMES.get(row.type, row.type.__name__),
                '   :Allowed values: %s' % _literalize(
                    re.sub(r'(one of: )(.*)', lambda m: m.group(1) + ', '.join(
                        '`%s`' % v.strip() for v in m.group(2).split(',')),
                        row.allowed())),
            ]
            for pname, pattern in row.parameters:
                lines.append('   :Parameter ``{%s}``: matches ``%s``' % (
                    pname, pattern))
            lines += ['', '   ' + _literalize(row.description), '']
        return self.parse_rst(lines)


class SampleConfigDirective(_GeneratedDirective):
    """The sample configuration file, generated in memory."""

    def render(self):
        from oslo_config import cfg
        from oslo_config import generator
        conf = cfg.ConfigOpts()
        generator.register_cli_opts(conf)
        conf(args=['--namespace', 'nova_gpu_ext', '--wrap-width', '79'])
        out = io.StringIO()
        generator.generate(conf, output_file=out)
        text = out.getvalue()
        if '[gpu_ext]' not in text:
            raise RuntimeError('no [gpu_ext] section: is the package '
                               'installed (oslo.config.opts entry point)?')
        block = nodes.literal_block(text, text)
        block['language'] = 'ini'
        return [block]


class TweaksDirective(_GeneratedDirective):
    """The installed domain XML tweaks."""

    def render(self):
        from nova_gpu_ext.virt import tweaks
        found = tweaks.load_tweaks()
        if not found:
            raise RuntimeError('no tweak in the %s namespace: is the package '
                               'installed?' % tweaks.NAMESPACE)
        lines = ['.. list-table::', '   :header-rows: 1',
                 '   :widths: 20 50 15 15', '',
                 '   * - name', '     - what it changes',
                 '     - GPU guests by default', '     - needs']
        for name in sorted(found):
            tweak = found[name]
            needs = []
            if tweak.min_libvirt_version:
                needs.append('libvirt %s' % tweaks._version(
                    tweak.min_libvirt_version))
            if tweak.min_qemu_version:
                needs.append('QEMU %s' % tweaks._version(
                    tweak.min_qemu_version))
            lines += [
                '   * - ``%s``' % name,
                '     - %s' % (_literalize(tweak.summary) or '(no summary)'),
                '     - %s' % ('yes' if tweak.default_for_gpu_guests
                               else 'no (opt in)'),
                '     - %s' % (', '.join(needs) or '-'),
            ]
        return self.parse_rst(lines)


class CLIDirective(_GeneratedDirective):
    """``nova-gpu-ext --help`` and the help of each subcommand."""

    def render(self):
        from nova_gpu_ext.cmd import main
        old_columns = os.environ.get('COLUMNS')
        os.environ['COLUMNS'] = '79'
        try:
            parser = main.build_parser()
            out = [self._block(parser.format_help())]
            for action in parser._actions:
                if not isinstance(action, argparse._SubParsersAction):
                    continue
                for name, sub in sorted(action.choices.items()):
                    section = nodes.section(
                        ids=['cli-%s' % name], names=['cli-%s' % name])
                    section += nodes.title('', 'nova-gpu-ext %s' % name)
                    section += self._block(sub.format_help())
                    out.append(section)
        finally:
            if old_columns is None:
                os.environ.pop('COLUMNS', None)
            else:
                os.environ['COLUMNS'] = old_columns
        return out

    @staticmethod
    def _block(text):
        block = nodes.literal_block(text, text)
        block['language'] = 'none'
        return block


class CLIOutputDirective(_GeneratedDirective):
    """The output of one ``nova-gpu-ext`` command, run at build time."""

    required_arguments = 1
    final_argument_whitespace = True

    def render(self):
        import contextlib
        import shlex
        from nova_gpu_ext.cmd import main
        argv = shlex.split(self.arguments[0])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main.main(argv)
        if status:
            raise RuntimeError('nova-gpu-ext %s exited with %s' % (
                self.arguments[0], status))
        text = '$ nova-gpu-ext %s\n%s' % (self.arguments[0], out.getvalue())
        block = nodes.literal_block(text, text)
        block['language'] = 'none'
        return [block]


def setup(app):
    app.add_directive('gpu-extra-specs', ExtraSpecsDirective)
    app.add_directive('gpu-sample-config', SampleConfigDirective)
    app.add_directive('gpu-tweaks', TweaksDirective)
    app.add_directive('gpu-cli', CLIDirective)
    app.add_directive('gpu-cli-output', CLIOutputDirective)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
