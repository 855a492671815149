#!/usr/bin/env python3
"""Writes the font fuzz target's kerning seeds from its glyph seed
(tests/fuzz/seeds/font/abc.ttf, glyphs 1-3 for a, b, c):

  abc_kern.ttf  a kern table: format 0 pairs (a b -60, b c -10)
  abc_gpos.ttf  that kern table and a GPOS table with one pair adjustment
                lookup of two subtables: format 1, pair sets for a (b -50,
                c -20) and b (a -30); format 2, classes {a, c} and {b, c}
                (a or c followed by b or c: -40)

The GPOS table wins where both exist; test_picture's test_kerning reads
these files too. Run from the project root; Python's standard library only.
"""
import struct

SEEDS = "tests/fuzz/seeds/font/"


def u16(*values):
    return b"".join(struct.pack(">H", v & 0xFFFF) for v in values)


def tables_of(font):
    n = struct.unpack(">H", font[4:6])[0]
    out = {}
    for i in range(n):
        tag, _, off, length = struct.unpack(">4sIII", font[12 + 16 * i : 28 + 16 * i])
        out[tag] = font[off : off + length]
    return out


def font_of(tables):
    tags = sorted(tables)
    n = len(tags)
    head = struct.pack(">IHHHH", 0x00010000, n, 0, 0, 0)
    offset = 12 + 16 * n
    directory, body = b"", b""
    for tag in tags:
        data = tables[tag]
        directory += struct.pack(">4sIII", tag, 0, offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    return head + directory + body


def kern_table():
    pairs = [(1, 2, -60), (2, 3, -10)]
    sub = u16(0, 6 + 8 + 6 * len(pairs), 1, len(pairs), 12, 1, 0)
    sub += b"".join(u16(a, b, v) for a, b, v in pairs)
    return u16(0, 1) + sub


def gpos_table():
    # format 1: coverage, pair sets
    cov1 = u16(1, 2, 1, 2)  # format 1, glyphs a b
    set_a = u16(2, 2, -50, 3, -20)
    set_b = u16(1, 1, -30)
    head1 = 10 + 2 * 2
    f1 = u16(1, head1 + len(set_a) + len(set_b), 4, 0, 2, head1, head1 + len(set_a))
    f1 += set_a + set_b + cov1
    # format 2: coverage, two class definitions, the class matrix
    matrix = u16(0, 0, 0, -40)  # class1 0: (0, 0); class1 1: (0, -40)
    cov2 = u16(2, 1, 1, 3, 0)  # format 2: glyphs 1..3 from index 0
    cd1 = u16(1, 1, 3, 1, 0, 1)  # format 1: a 1, b 0, c 1
    cd2 = u16(2, 1, 2, 3, 1)  # format 2: b..c class 1
    at = 16 + len(matrix)
    f2 = u16(2, at, 4, 0, at + len(cov2), at + len(cov2) + len(cd1), 2, 2)
    f2 += matrix + cov2 + cd1 + cd2
    lookup = u16(2, 0, 2, 10, 10 + len(f1)) + f1 + f2
    lookups = u16(1, 4) + lookup
    return u16(1, 0, 0, 0, 10) + lookups


def main():
    with open(SEEDS + "abc.ttf", "rb") as f:
        base = tables_of(f.read())
    with_kern = {**base, b"kern": kern_table()}
    with_gpos = {**with_kern, b"GPOS": gpos_table()}
    for name, tables in ("abc_kern.ttf", with_kern), ("abc_gpos.ttf", with_gpos):
        with open(SEEDS + name, "wb") as f:
            f.write(font_of(tables))


if __name__ == "__main__":
    main()
