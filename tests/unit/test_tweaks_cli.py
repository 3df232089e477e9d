"""``nova-gpu-ext tweaks`` lists every installed tweak with its switch."""

import io

from nova_gpu_ext.cmd import main as cli
from nova_gpu_ext.virt import tweaks


def test_lists_every_installed_tweak():
    out = io.StringIO()
    args = cli.build_parser().parse_args(['tweaks'])
    assert args.func(args, out=out) == 0
    text = out.getvalue()
    installed = tweaks.load_tweaks()
    assert installed
    for name, tweak in installed.items():
        line = [line for line in text.splitlines()
                if line.startswith(name + ' ')]
        assert line, name
        assert ('on' if tweak.default_for_gpu_guests else 'opt-in') in \
            line[0]
    assert 'gpu:tweak:<name>' in text
