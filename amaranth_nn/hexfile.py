"""``$readmemh`` text: the one writer and reader of the project's ROM image files.

One word per line, most significant digit first, zero-padded to ``ceil(width/4)`` hex digits,
word 0 first. Negative integers are written in two's complement modulo ``2**width``.
"""

__all__ = ["format_hex", "parse_hex"]


def format_hex(words, width):
    """``$readmemh`` text of ``words`` (integers) in ``width`` bits."""
    digits = max(1, -(-width // 4))
    mask = (1 << width) - 1
    return "".join(f"{int(word) & mask:0{digits}x}\n" for word in words)


def parse_hex(text):
    """Words of ``$readmemh`` text as written by :func:`format_hex` (``//`` comments allowed).

    Raises
    ------
    ValueError
        On an address marker (``@``) or anything that is not a hex word.
    """
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("//", 1)[0].strip()
        for token in line.split():
            if token.startswith("@"):
                raise ValueError(f"line {number}: address markers are not supported")
            try:
                words.append(int(token.replace("_", ""), 16))
            except ValueError:
                raise ValueError(f"line {number}: {token!r} is not a hex word") from None
    return words
