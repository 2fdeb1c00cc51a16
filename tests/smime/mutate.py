#!/usr/bin/env python3
"""mutate.py: differential test material for t_differential.sh.

  mutate.py gen SIGNED.eml OUTDIR N SEED
      N variants of a valid multipart/signed message: its own header
      section, its Content-Type value and its framing (preamble, delimiter
      lines, epilogue, extra parts) changed in ways mail readers disagree
      on, most of them adding a text part that says MALLORY where some
      reader could show it.  The signed part and the signature are left
      alone, so the signature stays valid whatever the reader.
  mutate.py seen FILE
      What Python's email parser (compat32 and the default policy), one
      real mail reader, shows of FILE that our `smime=pass` would not speak
      for: another top-level type, other than two parts, MALLORY in a part,
      more than one From, a From address (or one in its display name or
      comment, encoded-words decoded) other than bob's.  Prints nothing
      when it sees what we verified.
"""
import email
import email.header
import email.policy
import email.utils
import os
import random
import re
import sys

EVIL = 'Pay invoice 1 to account MALLORY.'


def gen(src, outdir, n, seed):
    rnd = random.Random(seed)
    m = open(src, 'rb').read().decode().replace('\r\n', '\n')
    head, body = m.split('\n\n', 1)
    b = re.search(r'boundary="([^"]*)"', head).group(1)
    lines = head.split('\n')
    ci = [i for i, l in enumerate(lines) if l.lower().startswith('content-type')][0]
    ct = lines[ci].split(':', 1)[1].strip()
    while ci + 1 < len(lines) and lines[ci + 1][:1] in ' \t':
        ct += ' ' + lines.pop(ci + 1).strip()
    del lines[ci]
    bq = 'boundary="%s"' % b

    def part(bb):
        return '--%s\nContent-Type: text/plain\n\n%s\n' % (bb, EVIL)

    ct_ops = [
        lambda v: v.replace(bq, bq + '; boundary="EVIL"'),
        lambda v: v.replace(bq, 'boundary="EVIL"; ' + bq),
        lambda v: v.replace(bq, 'boundary = "%s"' % b),
        lambda v: v.replace(bq, 'BOUNDARY="%s"' % b),
        lambda v: v.replace(bq, 'boundary=%s' % b),
        lambda v: v.replace(bq, bq + ' (c)'),
        lambda v: v.replace(bq, 'boundary*0="%s"' % b),
        lambda v: v.replace(bq, 'boundary*0="%s"; boundary*1="X"' % b),
        lambda v: v.replace(bq, 'boundary*1="X"; boundary*0="%s"' % b),
        lambda v: v.replace(bq, "boundary*=us-ascii''%s" % b),
        lambda v: v.replace(bq, 'boundary="%s' % b),
        lambda v: v.replace(bq, 'boundary="\\%s"' % b),
        lambda v: v.replace(bq, bq + 'x'),
        lambda v: v.replace('multipart/signed', 'multipart/signed (x)'),
        lambda v: v.replace('multipart/signed', 'multipart / signed'),
        lambda v: v.replace('multipart/signed', 'Multipart/Signed'),
        lambda v: v.replace(';', ' ;'),
        lambda v: v + ';',
        lambda v: v + '; boundary=EVIL',
        lambda v: v.replace('; ', ';\n\t'),
        lambda v: v.replace('multipart/signed;', 'multipart/signed; ' +
                            ' '.join('a%d=b;' % i for i in range(14))),
        lambda v: v.replace('protocol=', 'x; protocol='),
    ]
    from_ops = [
        'Bob <bob@partner.example> <ceo@partner.example>',
        '"ceo@partner.example" <bob@partner.example>',
        '=?utf-8?q?ceo=40partner=2Eexample?= <bob@partner.example>',
        '=?utf-8?b?Y2VvQHBhcnRuZXIuZXhhbXBsZQ==?= <bob@partner.example>',
        'bob@partner.example (CEO <ceo@partner.example>)',
        '(ceo@partner.example) bob@partner.example',
        'Bob <bob@partner.example>, CEO <ceo@partner.example>',
        'Friends: bob@partner.example, ceo@partner.example;',
        'BOB@Partner.Example',
        '"Bob, Partner" <bob@partner.example>',
        'Bob <bob@partner.example> (work)',
    ]
    hdr_ops = [
        'Content-Type: multipart/mixed; boundary="EVIL"',
        'Content-Type : multipart/mixed; boundary="EVIL"',
        'Content-Type:multipart/mixed;boundary=EVIL',
        'content-type: text/plain',
        'this line has no colon',
        ' continuation',
        'Content-Transfer-Encoding: base64',
        'Content-Transfer-Encoding: quoted-printable',
        'X-Long: ' + 'x' * 9000,
        'Content-Type: multipart/mixed; boundary="EVIL"' + ' ' * 9000,
        'Content-Disposition: inline',
        'From: CEO <ceo@partner.example>',
    ]
    body_ops = [
        lambda d: part('EVIL') + d,
        lambda d: part(b) + d,
        lambda d: d.replace('--%s--' % b, part(b) + '--%s--' % b),
        lambda d: d.replace('--%s--' % b, '--%s--\n' % b + part(b)),
        lambda d: d.replace('--%s--' % b, '--%s--\n' % b + part(b) + '--%s--\n' % b),
        lambda d: d.replace('--%s--' % b, ''),
        lambda d: d + '\n' + part(b),
        lambda d: d.replace('--%s\n' % b, '--%s \n' % b, 1),
        lambda d: d.replace('--%s\n' % b, '--%sX\n' % b, 1),
        lambda d: 'preamble ' + EVIL + '\n' + d,
        lambda d: d.replace('\n', '\r\n'),
        lambda d: d.replace('--%s--' % b, '--%s-- ' % b),
        lambda d: d.replace('\n--%s\nContent-Type: application' % b,
                            '\n' + part(b) + '--%s\nContent-Type: application' % b),
    ]
    for k in range(n):
        ls, v, d = list(lines), ct, body
        for _ in range(rnd.randint(1, 3)):
            w = rnd.random()
            if w < 0.35:
                v = rnd.choice(ct_ops)(v)
            elif w < 0.6:
                ls.insert(rnd.randrange(len(ls) + 1), rnd.choice(hdr_ops))
            elif w < 0.7:
                ls = [('From: ' + rnd.choice(from_ops)) if l.startswith('From:')
                      else l for l in ls]
            else:
                d = rnd.choice(body_ops)(d)
        ls.insert(rnd.randrange(len(ls) + 1), 'Content-Type: ' + v)
        with open(os.path.join(outdir, 'm%04d.eml' % k), 'w') as f:
            f.write('\n'.join(ls) + '\n\n' + d)


def seen(path):
    raw = open(path, 'rb').read()
    bad = []
    for pol in (email.policy.compat32, email.policy.default):
        m = email.message_from_bytes(raw, policy=pol)
        if m.get_content_type() != 'multipart/signed':
            bad.append('sees %s' % m.get_content_type())
        elif not m.is_multipart() or len(m.get_payload()) != 2:
            bad.append('sees %s part(s)' % (len(m.get_payload()) if m.is_multipart() else 'no'))
        for p in m.walk():
            if not p.is_multipart() and b'MALLORY' in (p.get_payload(decode=True) or b''):
                bad.append('shows MALLORY in a %s part' % p.get_content_type())
        froms = m.get_all('From') or []
        if len(froms) > 1:
            bad.append('sees two From fields')
        shown = []
        for name, addr in email.utils.getaddresses([str(f) for f in froms]):
            name = str(email.header.make_header(email.header.decode_header(name))) if name else ''
            shown += [addr] + re.findall(r'[\w.%+\'-]+@[\w-]+(?:\.[\w-]+)+', name)
        if {a.lower() for a in shown if a} != {'bob@partner.example'}:
            bad.append('shows From %s' % ', '.join(shown))
    if bad:
        print('; '.join(sorted(set(bad))))


if __name__ == '__main__':
    if sys.argv[1] == 'gen':
        gen(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        seen(sys.argv[2])
