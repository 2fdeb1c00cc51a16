"""der.py: the little BER/DER the S/MIME test scripts take apart and put
back together (t_opaque.sh, t_kind.sh): one-byte tags, a node is
[tag, bytes] (primitive) or [tag, [nodes]] (constructed); indefinite
lengths are read, definite ones written."""


def parse(b, i):
    """The node at b[i:] and the offset after it."""
    tag = b[i]; i += 1
    l = b[i]; i += 1
    if l == 0x80:
        items = []
        while b[i:i+2] != b'\0\0':
            it, i = parse(b, i)
            items.append(it)
        return [tag, items], i + 2
    if l & 0x80:
        n = l & 0x7f
        l = int.from_bytes(b[i:i+n], 'big'); i += n
    body = b[i:i+l]; i += l
    if tag & 0x20:
        items, j = [], 0
        while j < len(body):
            it, j = parse(body, j)
            items.append(it)
        return [tag, items], i
    return [tag, body], i


def ln(n):
    """A definite length n, encoded."""
    if n < 0x80:
        return bytes([n])
    nb = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(nb)]) + nb


def enc(t):
    """A node as DER (definite lengths)."""
    tag, v = t
    body = b''.join(enc(x) for x in v) if isinstance(v, list) else v
    return bytes([tag]) + ln(len(body)) + body


def content(t):
    """The bytes of a node's primitive parts, joined."""
    tag, v = t
    return v if not isinstance(v, list) else b''.join(content(x) for x in v)
