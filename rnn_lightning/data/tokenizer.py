"""Word tokenizer for the rt-polarity movie-review snippets.

The rules, applied in this order:

1. Unicode NFC normalisation, so a precomposed ``é`` and ``e`` + combining accent are one word.
2. HTML numeric entities are decoded. The corpus has ``can&#8217 ; t`` and ``ambition&#133 ; whole``:
   the original ``&#8217;`` was later split by the authors' own tokenizer, so the ``;`` and the
   spaces around it are swallowed too. Code points 128-159 are read as cp1252 bytes (``&#133``
   means ``…``, not the C1 control character U+0085). ``&amp;``, ``&quot;``, ``&lt;``, ``&gt;``,
   ``&apos;`` and ``&nbsp;`` are decoded as well.
3. Curly quotes and the backtick become ASCII quotes (``‘ ’ ` -> '``, ``“ ” -> "``) so that
   ``it’s`` splits like ``it's``.
4. Lower-casing.
5. HTML tag remnants are removed: ``<b>``, ``</b>``, ``<em>``, ``<i>``, ``</>``, ``<br/>``.
6. Critics' editorial brackets inside a word are dropped: ``[h]ad`` -> ``had``,
   ``[t]here's`` -> ``there's``. Brackets around whole words (``[garbus]``) stay punctuation.
7. Clitics are split off Penn-Treebank style: ``n't`` (``isn't`` -> ``is n't``,
   ``can't`` -> ``ca n't``) and ``'s 're 've 'd 'll 'm`` (``film's`` -> ``film 's``).
   GloVe's vocabulary has ``'s``, ``n't``, ``ca`` and ``wo`` but not ``it's`` or ``can't``.
8. Tokens are then read left to right, first match wins:
   ``'n'`` (rock 'n' roll), decades (``'70s``), the clitics above, numbers with inner
   ``. , / :`` (``9/11``, ``3.5``, ``1,000``), words with inner hyphens or apostrophes
   (``rom-com``, ``3-d``, ``o'brien``), and otherwise any single non-space character, so every
   other punctuation mark (``. , ! ? ; : ( ) [ ] " ' / - … — –``) is its own token.

Whitespace of any kind and amount only separates tokens. Bump ``TOKENIZER_VERSION`` whenever a
rule changes: a checkpoint stores it, and a vocabulary is only valid with the rules it was built with.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["TOKENIZER_VERSION", "tokenize"]

TOKENIZER_VERSION = "v1"

# Rule 2. ``\s*;?`` then at most one space: "can&#8217 ; t" must become "can't", not "can' t".
_NUMERIC_ENTITY = re.compile(r"&#(\d{1,7})(?:\s*;\s?)?")
_NAMED_ENTITY = re.compile(r"&(amp|quot|lt|gt|apos|nbsp)\s*;", re.IGNORECASE)
_NAMED_ENTITY_TEXT = {"amp": "&", "quot": '"', "lt": "<", "gt": ">", "apos": "'", "nbsp": " "}

# Rule 3.
_QUOTE_TABLE = str.maketrans({"‘": "'", "’": "'", "`": "'", "“": '"', "”": '"'})

# Rule 5. Only short tag names without attributes: "a < b > c" in prose must survive.
_HTML_TAG = re.compile(r"</?[a-z]{0,10}\s*/?>")

# Rule 6.
_BRACKETED_LETTERS = re.compile(r"\[(\w+)\](?=\w)")

# Rule 7. The look-behind keeps a quote that opens a word ("'s" at the start) untouched.
_NOT_CLITIC = re.compile(r"(?<=\w)n't\b")
_OTHER_CLITICS = re.compile(r"(?<=\w)'(s|re|ve|d|ll|m)\b")

# Rule 8.
_TOKEN = re.compile(
    r"""
    'n'                          # rock 'n' roll
    | '\d0s\b                    # '70s
    | n't\b | '(?:s|re|ve|d|ll|m)\b
    | \d+(?:[.,/:]\d+)+          # 9/11, 3.5, 1,000, 2:30
    | \w+(?:[-']\w+)*            # rom-com, 3-d, o'brien
    | \S                         # any other single character is punctuation
    """,
    re.VERBOSE,
)


def _decode_numeric_entity(match: re.Match[str]) -> str:
    """Turn ``&#NNN`` into its character; 128-159 are cp1252 bytes, as browsers read them."""
    code = int(match.group(1))
    if 128 <= code <= 159:
        try:
            return bytes([code]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d have no cp1252 meaning
            return " "
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return " "
    return chr(code)


def _decode_named_entity(match: re.Match[str]) -> str:
    """Turn ``&amp;`` and friends into their character."""
    return _NAMED_ENTITY_TEXT[match.group(1).lower()]


def tokenize(text: str) -> list[str]:
    """Split one review into lower-case word and punctuation tokens (rules in the module docstring).

    Args:
        text: one review, already decoded to ``str``.

    Returns:
        The tokens in reading order; an empty list when nothing but whitespace or tags is left.

    Raises:
        TypeError: when ``text`` is not a ``str`` (e.g. undecoded ``bytes``).
    """
    if not isinstance(text, str):
        raise TypeError(
            f"tokenize() needs a str, got {type(text).__name__}; decode bytes first (the rt-polarity files are cp1252)."
        )
    text = unicodedata.normalize("NFC", text)
    text = _NUMERIC_ENTITY.sub(_decode_numeric_entity, text)
    text = _NAMED_ENTITY.sub(_decode_named_entity, text)
    text = text.translate(_QUOTE_TABLE).lower()
    text = _HTML_TAG.sub(" ", text)
    text = _BRACKETED_LETTERS.sub(r"\1", text)
    text = _NOT_CLITIC.sub(" n't", text)
    text = _OTHER_CLITICS.sub(r" '\1", text)
    return _TOKEN.findall(text)
