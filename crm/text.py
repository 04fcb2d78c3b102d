"""What a character is, for text people type and the app shows: the one place that says it.

Forms refuse what would break a one-line or a multi-line value (crm/web/forms.py), URLs have
their controls cleaned or refused (crm/web/params.py), and text from stored events, which may
hold anything its schema allowed, is flattened to one line for headers and output
(crm/jobs/mail.py, crm/emails.py). All of them ask the functions here.
"""

import unicodedata

# What str.splitlines() breaks at: all are controls (Cc) but U+2028 LINE SEPARATOR and U+2029
# PARAGRAPH SEPARATOR. A name carrying one cannot go into an e-mail header.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# Zero-width (non-)joiners are format characters (Cf) that are part of spelling in Persian and
# Indic names and of emoji sequences; they cannot break a line or reorder text. Every other
# format character is invisible and has no place in one line of text: bidi overrides can show
# a name as something else, tag characters can hide text.
_JOINERS = frozenset("\u200c\u200d")
# The controls multi-line text keeps: tabs, and browsers send a textarea's line breaks as CR LF.
_MULTI_LINE = frozenset("\t\n\r")
# Embeddings, overrides and isolates: they reorder the text after them, up to the end of a
# paragraph or further, so a note can show something else than it says. The marks (U+200E,
# U+200F, U+061C) only set the direction of neutral characters around them, and stay allowed.
_DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that show as nothing: Hangul fillers, the blank Braille pattern and a
# blank musical note head. A name of these alone is an empty, unclickable link.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\U0001d159")


def is_line_break(char: str) -> bool:
    return char in _LINE_BREAKS


def is_control(char: str) -> bool:
    # Cc: C0/C1 controls, NUL (which PostgreSQL text cannot hold) and most line breaks; Cs: lone
    # surrogates, which cannot be encoded to store or send anywhere.
    return unicodedata.category(char) in ("Cc", "Cs")


def is_surrogate(char: str) -> bool:
    return unicodedata.category(char) == "Cs"


def is_invisible_format(char: str) -> bool:
    """A format character (bidi control, BOM, soft hyphen, tag) other than the joiners."""
    return unicodedata.category(char) == "Cf" and char not in _JOINERS


def is_direction_control(char: str) -> bool:
    return char in _DIRECTION_CONTROLS


def is_visible(char: str) -> bool:
    # L, N, S, P: letters, numbers, symbols, punctuation; not marks (they need a base),
    # separators, or the controls and format characters one line refuses
    return unicodedata.category(char)[0] in "LNSP" and char not in _BLANKS


def breaks_one_line(char: str) -> bool:
    """A character one line of text (a name, an e-mail) cannot hold: a line break, a control
    or an invisible format character."""
    return is_control(char) or is_line_break(char) or is_invisible_format(char)


def breaks_multi_line(char: str) -> bool:
    """A character multi-line text (notes, a description) cannot hold: a control other than
    tabs, CR and LF, or a text direction control."""
    return char not in _MULTI_LINE and (is_control(char) or is_direction_control(char))


def one_line(text: str, limit: int) -> str:
    """Text fit for a header or a single line of output, whatever a stored event holds.

    EmailMessage refuses header values with line breaks (CR, LF, VT, FF, U+001C-1E, U+0085,
    U+2028/2029) and cannot encode lone surrogates; bidi overrides would reorder what follows
    them. Line breaks and other control characters become spaces, format characters (bidi
    controls, BOM, soft hyphen) and surrogates are dropped, whitespace runs become one space,
    and the result is cut to `limit` characters, an ellipsis marking the cut.
    """
    return cut(flattened(text), limit)


def flattened(text: str) -> str:
    """one_line() without the cut: for callers that change the line before cutting it."""
    return " ".join("".join(map(_in_one_line, text)).split())


def cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def _in_one_line(char: str) -> str:
    if not breaks_one_line(char):
        return char
    if is_surrogate(char) or is_invisible_format(char):
        return ""  # shows as nothing, so it separates nothing
    return " "  # a line break or a control stood between two words
