#!/usr/bin/python3
"""Writes apps/common/unicode_tables.h: the character properties the text
tools need, exactly as Python's str methods and `re` module see them.

Run from the repository root with Debian's Python:

    /usr/bin/python3 scripts/gen_unicode_tables.py

The tables come from the running Python's str methods (so from its
unicodedata, whose Unicode version the header names):

  word      re's \\w on str patterns: str.isalnum() or '_'
  space     re's \\s on str patterns and str.split(): str.isspace()
  cased, case_ignorable
            the two properties str.lower() consults for a capital sigma
            (U+03A3 becomes final sigma U+03C2 after a cased letter, possibly
            with case-ignorable characters between, unless a cased letter
            follows in the same way). Python does not expose them; they are
            read off str.lower() itself: a character is cased (and not
            case-ignorable) if c + 'Σ' ends in 'ς'; it is case-ignorable if
            'A' + c + 'Σ' does and c + 'Σ' does not.
  lower     str.lower() of each single character (1 to 3 code points), as
            runs of code points first, first + stride, ..., last that map to
            cp + delta, plus the few that map to several code points.

The script checks that the runs reproduce every mapping before writing, and
formats the header with clang-format when it is installed.
With --digest FILE it also writes one FNV-1a digest of all properties per
block of 4096 code points, which tests/test_text.c recomputes through the C
lookups (so the lookups, not only the tables, are checked against Python).
"""
import argparse
import os
import shutil
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N = 0x110000


def ranges(pred):
    out, start = [], None
    for c in range(N):
        if pred(c):
            if start is None:
                start = c
        elif start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, N - 1))
    return out


def is_word(c):
    ch = chr(c)
    return ch.isalnum() or ch == '_'


def is_space(c):
    return chr(c).isspace()


def final_after(s):
    return s.lower()[-1] == '\u03c2'


def is_cased(c):
    return final_after(chr(c) + '\u03a3')


def is_case_ignorable(c):
    return final_after('A' + chr(c) + '\u03a3') and not is_cased(c)


def lower_runs():
    single, multi = [], []
    for c in range(N):
        low = chr(c).lower()
        if c == 0x3A3:
            continue  # capital sigma depends on its context
        if len(low) > 1:
            multi.append((c, [ord(x) for x in low]))
        elif ord(low) != c:
            single.append((c, ord(low)))
    runs = []
    for c, low in single:
        d = low - c
        if runs:
            first, last, delta, stride = runs[-1]
            if delta == d and ((stride and c - last == stride) or
                               (not stride and c - last in (1, 2))):
                runs[-1] = (first, c, delta, c - last)
                continue
        runs.append((c, c, d, 0))
    runs = [(f, l, d, s or 1) for f, l, d, s in runs]
    # check: the runs give exactly the single mappings
    got = {}
    for f, l, d, s in runs:
        for c in range(f, l + 1, s):
            got[c] = c + d
    if got != dict(single):
        sys.exit('lower runs do not reproduce str.lower()')
    return runs, multi


def c_ranges(name, rs):
    lines = [f'static const uint32_t {name}[][2] = {{']
    row = []
    for a, b in rs:
        row.append(f'{{0x{a:X}, 0x{b:X}}}')
        if len(row) == 4:
            lines.append('    ' + ', '.join(row) + ',')
            row = []
    if row:
        lines.append('    ' + ', '.join(row) + ',')
    lines.append('};')
    return '\n'.join(lines)


def digest(path):
    """One FNV-1a-64 digest per 4096 code points of: a flags byte (word 1,
    space 2, cased 4, case-ignorable 8), then each code point of the
    character's lowercase as 3 little-endian bytes, then 0xFF. Capital sigma
    is given the lowercase 'σ' (its value without context). Surrogates,
    which UTF-8 cannot hold, are left out."""
    with open(path, 'w') as f:
        f.write('# FNV-1a-64 per 4096 code points of the Unicode properties '
                'of scripts/gen_unicode_tables.py\n')
        f.write(f'# Python {sys.version.split()[0]}, Unicode '
                f'{unicodedata.unidata_version}\n')
        for block in range(N // 4096):
            h = 0xcbf29ce484222325
            for c in range(block * 4096, block * 4096 + 4096):
                if 0xD800 <= c <= 0xDFFF:
                    continue
                ign = is_case_ignorable(c)
                flags = (is_word(c) | is_space(c) << 1 |
                         (is_cased(c) and not ign) << 2 | ign << 3)
                data = [flags]
                for x in chr(c).lower():
                    o = ord(x)
                    data += [o & 255, o >> 8 & 255, o >> 16]
                data.append(0xFF)
                for b in data:
                    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
            f.write(f'{h:016x}\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(ROOT, 'apps', 'common',
                                                  'unicode_tables.h'))
    ap.add_argument('--digest', default=os.path.join(ROOT, 'tests', 'data',
                                                     'unicode_digest.txt'))
    a = ap.parse_args()
    runs, multi = lower_runs()
    if len(multi) > 8 or any(len(m) > 3 for _, m in multi):
        sys.exit('unexpected multi-character lowercase mappings')
    word = ranges(is_word)
    space = ranges(is_space)
    cased = ranges(lambda c: is_cased(c))
    ignorable = ranges(is_case_ignorable)
    version = unicodedata.unidata_version
    out = [
        '/* Generated by scripts/gen_unicode_tables.py from the str methods '
        f'of Python {sys.version.split()[0]}',
        f' * (Unicode {version}). Do not edit: run the script. See '
        'apps/common/unicode.c. */',
        '#ifndef LOOM_APPS_UNICODE_TABLES_H',
        '#define LOOM_APPS_UNICODE_TABLES_H',
        '',
        '#include <stdint.h>',
        '',
        f'#define APP_UNICODE_VERSION "{version}"',
        '',
        '/* re \\w: str.isalnum() or "_" */',
        c_ranges('app_word_ranges', word),
        '',
        '/* re \\s and str.split(): str.isspace() */',
        c_ranges('app_space_ranges', space),
        '',
        '/* cased and not case-ignorable (for the final sigma) */',
        c_ranges('app_cased_ranges', cased),
        '',
        '/* case-ignorable (for the final sigma) */',
        c_ranges('app_case_ignorable_ranges', ignorable),
        '',
        '/* str.lower(): first, first + stride, ..., last map to cp + delta */',
        'static const struct {',
        '  uint32_t first, last;',
        '  int32_t delta;',
        '  uint32_t stride;',
        '} app_lower_runs[] = {',
    ]
    for f, l, d, s in runs:
        out.append(f'    {{0x{f:X}, 0x{l:X}, {d}, {s}}},')
    out += ['};', '',
            '/* str.lower() results of more than one code point */',
            'static const struct {',
            '  uint32_t cp, lower[3];',
            '  int n;',
            '} app_lower_multi[] = {']
    for c, m in multi:
        vals = ', '.join(f'0x{x:X}' for x in m + [0] * (3 - len(m)))
        out.append(f'    {{0x{c:X}, {{{vals}}}, {len(m)}}},')
    out += ['};', '', '#endif', '']
    with open(a.out, 'w') as f:
        f.write('\n'.join(out))
    if shutil.which('clang-format'):  # the repository's style
        subprocess.run(['clang-format', '-i', a.out], check=True, cwd=ROOT)
    print(f'{a.out}: word {len(word)}, space {len(space)}, cased '
          f'{len(cased)}, case-ignorable {len(ignorable)} ranges; '
          f'{len(runs)} lowercase runs, {len(multi)} multi')
    if a.digest:
        digest(a.digest)
        print(a.digest)


if __name__ == '__main__':
    main()
