"""XMP packets cut down to the properties a caller allows (:func:`kept`), in linear time, with a size cap
(:data:`LIMIT`).

expat parses the packet's element (``x:xmpmeta``, Adobe's older ``x:xapmeta``, else a bare ``rdf:RDF``) once, in C,
calling back per element. Each property of a top-level ``rdf:Description`` (an attribute, or an element with what
it holds in RDF's, XML's and its own namespace: structure, array, language alternatives) whose namespace and name
are allowed is written out again in a new packet; nothing else is: no other property, nothing of another namespace
within one, no comment, processing instruction or CDATA markup, nothing before or after the packet's element, no
toolkit name. Prefixes are the packet's own where they are free.
"""

from __future__ import annotations

import xml.parsers.expat as expat
from typing import Callable

from ..provenance import XMP_LIMIT as LIMIT

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML = "http://www.w3.org/XML/1998/namespace"
_META = "adobe:ns:meta/"
_ROOTS = ("x:xmpmeta", "x:xapmeta", "rdf:RDF")  # a packet's element, the first found (x:xapmeta: Adobe's older name)
_SEP = "\x1f"  # between a name's namespace, local part and prefix as expat reports it (no XML name holds it)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_TEXT = str.maketrans(_ESCAPES)  # for character data
_VALUE = str.maketrans(_ESCAPES | {'"': "&quot;", "\n": "&#10;", "\t": "&#9;"})  # for a quoted attribute value
_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
_TAIL = "</x:xmpmeta>\n" + '<?xpacket end="w"?>'

Allowed = Callable[[str, str], bool]  # (namespace URI, local name) -> whether the property is kept


def kept(packet: bytes, allowed: Allowed) -> bytes | None:
    """A new packet (UTF-8) holding the properties of ``packet`` that ``allowed`` keeps (module docstring); None (no
    XMP) when ``packet`` or the new one is over :data:`LIMIT` bytes, ``packet`` has none of the elements above or
    is not well formed, or it keeps no property. Linear in the packet's size."""
    if len(packet) > LIMIT:
        return None
    text = packet.decode("utf-8", "replace")
    root = next((name for name in _ROOTS if f"<{name}" in text), None)
    if root is None:
        return None
    start, end = text.find(f"<{root}"), text.rfind(f"</{root}>") + len(f"</{root}>")
    walk = _Walk(allowed, 1 if root == "rdf:RDF" else 2)
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.namespace_prefixes = parser.ordered_attributes = parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler = walk.start, walk.end
    parser.CharacterDataHandler = walk.text
    try:
        parser.Parse(text[start:end] if end > start else text[start:], True)
    except expat.ExpatError:
        return None
    body = "".join(walk.descriptions)
    written = (_HEAD + f' <rdf:RDF xmlns:rdf="{RDF}">\n{body} </rdf:RDF>\n' + _TAIL).encode("utf-8")
    return written if body and len(written) <= LIMIT else None


class _Walk:
    """expat's callbacks: the kept properties of each ``rdf:Description`` at depth ``level`` + 1 (the ``rdf:RDF``
    at depth ``level``: 1 for a bare one, 2 inside ``x:xmpmeta``), as ``descriptions`` (text, one per description
    that keeps any)."""

    def __init__(self, allowed: Allowed, level: int) -> None:
        self.allowed, self.level = allowed, level
        self.depth = 0  # of the element open now (the packet's element: 1)
        self.inside = False  # within the packet's rdf:RDF
        self.keeping = 0  # the depth of the kept property being copied, 0 when none
        self.own = ""  # its namespace
        self.skipping = 0  # the depth of an element of another namespace within it, left out; 0 when none
        self.uris: dict[str, str] = {}  # expat's names -> their namespace URI
        self.attributes: list[str] = []  # the open description's kept attributes
        self.body: list[str] = []  # its kept elements, as text
        self.prefixes: dict[str, str] = {}  # its namespaces: URI -> the prefix written
        self.names: dict[str, str] = {}  # expat's names -> the names written, in the open description
        self.open = False  # whether the last start tag copied still lacks its ">" (an empty one ends "/>")
        self.verdicts: dict[str, bool] = {}  # expat's names of properties -> whether they are kept
        self.descriptions: list[str] = []

    def start(self, name: str, attributes: list[str]) -> None:
        self.depth += 1
        if self.keeping:
            if not self.skipping and self._uri(name) not in (RDF, XML, self.own):
                self.skipping = self.depth
            if not self.skipping:
                self.body.append(">" + self._tag(name, attributes) if self.open else self._tag(name, attributes))
                self.open = True
            return
        if self.depth >= self.level + 2:  # a property (or within one left out)
            if self.depth == self.level + 2 and self.inside and self._allowed(name):
                self.keeping, self.open, self.own = self.depth, True, self._uri(name)
                self.body.append("\n   " + self._tag(name, attributes))
            return
        uri, local = _parts(name)
        if self.depth == 1 and (uri, local) not in ((_META, "xmpmeta"), (_META, "xapmeta"), (RDF, "RDF")):
            raise expat.ExpatError("not an XMP packet")
        if self.depth == self.level:
            self.inside = (uri, local) == (RDF, "RDF")
        elif self.inside and self.depth == self.level + 1 and (uri, local) == (RDF, "Description"):
            for key, value in zip(attributes[::2], attributes[1::2]):
                if self.allowed(*_parts(key)):
                    self.attributes.append(f'{self._name(key)}="{value.translate(_VALUE)}"')

    def end(self, name: str) -> None:
        if self.skipping:
            self.skipping = 0 if self.depth == self.skipping else self.skipping
        elif self.keeping:
            self.body.append("/>" if self.open else f"</{self._name(name)}>")
            self.open = False
            self.keeping = 0 if self.depth == self.keeping else self.keeping
        elif self.inside and self.depth == self.level + 1:
            self._close_description()
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.keeping and not self.skipping:
            self.body.append(">" + data.translate(_TEXT) if self.open else data.translate(_TEXT))
            self.open = False

    def _close_description(self) -> None:
        """Write the description just closed out when it keeps anything, and start the next afresh."""
        if self.attributes or self.body:
            spaces = "".join(f' xmlns:{prefix}="{uri.translate(_VALUE)}"' for uri, prefix in self.prefixes.items())
            head = " ".join(['  <rdf:Description rdf:about=""' + spaces, *self.attributes])
            self.descriptions.append(head + ">" + "".join(self.body) + "\n  </rdf:Description>\n")
        self.attributes, self.body, self.prefixes, self.names = [], [], {}, {}

    def _allowed(self, name: str) -> bool:
        """Whether the property of expat's ``name`` is kept (the caller's answer, remembered)."""
        verdict = self.verdicts.get(name)
        if verdict is None:
            verdict = self.verdicts[name] = self.allowed(*_parts(name))
        return verdict

    def _tag(self, name: str, attributes: list[str]) -> str:
        """The start tag of a copied element with its attributes of RDF's, XML's and the property's namespace,
        without its closing ">"."""
        tag = "<" + self._name(name)
        for at in range(0, len(attributes), 2):
            if self._uri(attributes[at]) in (RDF, XML, self.own):
                tag += f' {self._name(attributes[at])}="{attributes[at + 1].translate(_VALUE)}"'
        return tag

    def _uri(self, name: str) -> str:
        """The namespace URI of expat's ``name`` ("" for none), remembered."""
        uri = self.uris.get(name)
        if uri is None:
            uri = self.uris[name] = _parts(name)[0]
        return uri

    def _name(self, name: str) -> str:
        """The prefixed name to write for expat's ``name`` (URI, local part, prefix): the packet's own prefix unless
        another namespace took it first in this description (then ``nsN``); ``rdf`` and ``xml`` always."""
        written = self.names.get(name)
        if written is None:
            written = self.names[name] = self._named(name)
        return written

    def _named(self, name: str) -> str:
        """:meth:`_name`, worked out."""
        parts = name.split(_SEP)
        if len(parts) == 1:
            return name  # (no namespace)
        uri, local = parts[0], parts[1]
        if uri in (RDF, XML):
            return ("rdf:" if uri == RDF else "xml:") + local
        if uri not in self.prefixes:
            own = parts[2] if len(parts) == 3 else ""
            taken = {"rdf", "xml", "x", *self.prefixes.values()}
            number = len(taken)
            while f"ns{number}" in taken:
                number += 1
            self.prefixes[uri] = own if own and own not in taken and not own.startswith("xml") else f"ns{number}"
        return f"{self.prefixes[uri]}:{local}"


def _parts(name: str) -> tuple[str, str]:
    """(namespace URI, local part) of expat's ``name`` (URI "" when it has none)."""
    parts = name.split(_SEP)
    return (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
