"""A generated corpus of hostile strings: everything a user (or a tokenizer, a dataset, a config) can put into a
token, a text, a label, a model name or a title, that an exported page or a JSON record could get wrong.

``hostile_strings()`` is deterministic (seeded); ``expected_text(s)`` is what a page must show for ``s``
(unpaired surrogates become U+FFFD: no UTF-8 / JSON text can carry them).
"""
from __future__ import annotations

import random

# Every case names what it attacks.
BASE: list[str] = [
    "<!--",                                   # an HTML comment opener inside <script> (the reported bug)
    "<!-- a --> b",
    "-->",
    "</script>",
    "</SCRIPT >",
    "</script><script>window.__pwned=1</script>",
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=\"window.__pwned=1\">",
    "<svg onload=window.__pwned=1>",
    "<b>bold</b>",
    "<![CDATA[",
    "]]>",
    "&amp; &lt; &#x3c; &",
    "\"",
    "'",
    "`${window.__pwned=1}`",
    "\\",
    "\\\\",
    "\\u003c",
    "\\\"",
    "\\x00",
    "\x00",
    "a\x00b",
    "\x01\x02\x1b[31m\x1f\x7f",
    "\t\n\r",
    "line\nbreak",
    "\u0085",                                 # NEL
    "\u2028",                                 # LINE SEPARATOR (a JS line terminator in old engines)
    "\u2029",                                 # PARAGRAPH SEPARATOR
    "\ud800",                                 # unpaired high surrogate
    "x\udfffy",                               # unpaired low surrogate
    "\u202eevil\u202c",                       # RTL override
    "\u200f\u200e\u061c",                     # RTL/LTR marks
    "مرحبا بالعالم",                          # Arabic (RTL)
    "שלום",                                   # Hebrew (RTL)
    "\u200d\u200b\ufeff",                     # zero-width joiner / space, BOM
    "🙂",
    "👨‍👩‍👧‍👦",                                   # ZWJ sequence
    "🏳️‍🌈",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",                                # astral plane letters
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",                           # combining marks
    "é vs é",                               # NFC vs NFD
    "{{ template }}",
    "%s %d %(x)s",
    "null",
    "NaN",
    "undefined",
    "__proto__",
    "constructor",
    "toString",
    "[CLS]",
    "##ing",
    "Ġhello",
    "▁world",
    "",
    " ",
]


def hostile_strings(n_random: int = 40, seed: int = 0, long: int = 20_000) -> list[str]:
    """``BASE`` + random concatenations of its pieces + one very long string (``long`` characters)."""
    rng = random.Random(seed)
    pieces = [s for s in BASE if s]
    out = list(BASE)
    for _ in range(n_random):
        out.append("".join(rng.choice(pieces) for _ in range(rng.randint(2, 5))))
    out.append(("<!--</script>\u2028" + "x" * 97) * (long // 110))
    return out


def expected_text(s: str) -> str:
    """What a JSON record / page can hold for ``s``: unpaired surrogates → U+FFFD, everything else unchanged."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
