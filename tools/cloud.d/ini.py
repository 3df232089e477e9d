"""devstack's ini-config functions (iniset, iniget, ...) for tools/cloud.

tools/cloud runs the devstack plugin's own configuration functions
(devstack/lib/nova-gpu-ext.sh) outside devstack; these are the few of
devstack's inc/ini-config they call, with the same meaning: one line per
value of a multi-valued option, the first line wins for iniget.

Usage: ini.py get|get_multiline|set|add FILE SECTION OPTION [VALUE]
"""

import re
import sys

SECTION = re.compile(r'^\s*\[([^\]]+)\]\s*$')
OPTION = re.compile(r'^\s*([^#;=\s][^=]*?)\s*=\s?(.*)$')


def _read(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _find(lines, section, option):
    """(index of the section header or None, indexes of option lines)."""
    current, header, hits = None, None, []
    for i, line in enumerate(lines):
        m = SECTION.match(line)
        if m:
            current = m.group(1)
            if current == section and header is None:
                header = i
            continue
        m = OPTION.match(line)
        if m and current == section and m.group(1) == option:
            hits.append(i)
    return header, hits


def _value(line):
    return OPTION.match(line).group(2)


def _end_of_section(lines, header):
    end = header + 1
    while end < len(lines) and not SECTION.match(lines[end]):
        end += 1
    while end > header + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def main(argv):
    cmd, path, section, option = argv[:4]
    lines = _read(path)
    header, hits = _find(lines, section, option)
    if cmd == 'get':
        if hits:
            print(_value(lines[hits[0]]))
        return 0
    if cmd == 'get_multiline':
        print(' '.join(_value(lines[i]) for i in hits))
        return 0
    value = argv[4]
    new = '%s = %s' % (option, value)
    if cmd == 'set' and hits:
        lines[hits[0]] = new
        for i in reversed(hits[1:]):
            del lines[i]
    elif header is None:
        if lines and lines[-1].strip():
            lines.append('')
        lines += ['[%s]' % section, new]
    else:
        at = hits[-1] + 1 if hits else _end_of_section(lines, header)
        lines.insert(at, new)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
