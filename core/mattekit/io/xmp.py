"""XMP packets stripped of personal properties in linear time (:func:`without`), with a size cap (:data:`LIMIT`).

expat checks that the packet is well formed (in C, linear, no tree kept); then one regular-expression scan, whose
patterns cannot backtrack over more than one name or value, finds each personal element (left out up to its end
tag) and attribute (left out with its value); the rest of the text stays as it was. What is left is parsed again
and searched for personal names without a prefix (a default namespace, a form not foreseen). A packet over
:data:`LIMIT`, not well formed, or still naming a personal property is dropped whole.
"""

from __future__ import annotations

import re
import xml.parsers.expat as expat
from functools import lru_cache

from ..provenance import XMP_LIMIT as LIMIT

_QUOTED = r"(?:\"[^\"<]*\"|'[^'<]*')"  # an attribute's value (XML allows no "<" in one)
_REST = r"(?:[^<>\"'/]|/(?!>)|" + _QUOTED + r")*"  # a tag's attributes (after its name, up to its ">" or "/>")
# kept as they are: comments, character data, processing instructions (personal names inside them are not markup)
_SKIPPED = r"(?P<kept><!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>)"


_ROOTS = ("x:xmpmeta", "x:xapmeta", "rdf:RDF")  # a packet's element, the first found (x:xapmeta: Adobe's older name)


@lru_cache(maxsize=4)
def _personal(local: str) -> re.Pattern:
    """The personal elements and attributes of a packet, for the personal local names ``local`` (a regular
    expression that fullmatches a name's local part), whatever their prefix or none (a default namespace). Replaced
    by its ``kept`` group, it leaves them out: an element up to its end tag (the first of its name: a nested one of
    the same name leaves a stray end tag, and the packet is then dropped), an attribute with its value."""
    name = r"(?:[^\W\d][\w.-]*:)?(?:" + local + ")"
    element = r"<(?P<name>" + name + r")(?=[\s/>])" + _REST + r"(?:/>|>.*?</(?P=name)\s*>)"
    attribute = r"\s(?=[\w.:-]+\s*=)" + name + r"\s*=\s*" + _QUOTED  # (the lookahead: text fails at once)
    return re.compile("|".join((_SKIPPED, element, attribute)), re.S)


def without(packet: bytes, local: str) -> bytes | None:
    """``packet`` (UTF-8) without the elements and attributes whose prefixed name's local part fullmatches
    ``local`` (a regular expression), the rest of the text as it was; None (drop the packet) when it is over
    :data:`LIMIT` bytes, its ``x:xmpmeta`` (``x:xapmeta``, else ``rdf:RDF``) element is missing or not well formed, it holds other
    markup than processing instructions around that element, or it still names a personal property in a form not
    foreseen (no prefix: a default namespace). Linear in the packet's size."""
    if len(packet) > LIMIT:
        return None
    text = packet.decode("utf-8", "replace")
    start, close = next(((text.find(f"<{root}"), f"</{root}>") for root in _ROOTS if f"<{root}" in text), (-1, ""))
    end = text.rfind(close) + len(close)
    if start < 0 or end < len(close) or not (_plain(text[:start]) and _plain(text[end:])):
        return None
    root = text[start:end]
    if not _parses(root):
        return None
    stripped = _personal(local).sub(r"\g<kept>", root)
    if not _parses(stripped):
        return None
    return (text[:start] + stripped + text[end:]).encode("utf-8")


def _parses(element: str) -> bool:
    """Whether expat parses ``element`` (one XML element), its prefixes bound."""
    try:
        expat.ParserCreate(namespace_separator="}").Parse(element, True)
    except expat.ExpatError:
        return False
    return True


def _plain(text: str) -> bool:
    """Whether ``text`` (around the packet's element) holds no markup but processing instructions (``<?xpacket``)."""
    at = text.find("<")
    while at >= 0:
        end = text.find("?>", at + 2) if text.startswith("<?", at) else -1
        if end < 0:
            return False
        at = text.find("<", end + 2)
    return True
