"""What made an output: the provenance record mattekit writes into every file it produces.

A record is a plain dict (JSON-serialisable)::

    {"software": "mattekit 0.1.0", "task": "remove",
     "models": [{"option": "model", "name": "sinet-portrait", "weights": "SINet.pth",
                 "sha256": "d164...", "derived": false}],
     "options": {"bg": "#ffffff"},             # the options that differ from the task's defaults
     "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"}

``derived``: the weights file is not one the catalog pins by sha256 (a converted file registered
with ``mattekit models add --derived``, or a ``--weights`` file).

A record written into a file also holds ``"file_sha256": "sha256:<hex>"``, the digest of that very file as written
(its bytes with this value read as :data:`UNSEALED`: :func:`seal`), so that a file edited since (pixels retouched in
an editor that keeps the XMP, a packet pasted into another photo) no longer matches it (:func:`intact`).

The digital source type is a term of the IPTC NewsCodes vocabulary
(http://cv.iptc.org/newscodes/digitalsourcetype/, used by IPTC Photo Metadata and C2PA):
- ``algorithmicallyEnhanced`` ("algorithmically-altered media": modification or correction by an
  algorithm that keeps the picture's content) for cut-outs, mattes, bokeh, enhancement and masks;
- ``compositeWithTrainedAlgorithmicMedia`` (media combined with media made by a trained model) for
  super-resolution, whose added detail is synthesised by a trained network.

In files the record travels as an XMP packet (:func:`to_xmp` / :func:`from_xmp`): the IPTC
``Iptc4xmpExt:DigitalSourceType``, ``xmp:CreatorTool`` and the whole record as JSON in
``mattekit:Record``. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import xml.etree.ElementTree as ElementTree
import zlib

from . import __version__

IPTC_TERMS = "http://cv.iptc.org/newscodes/digitalsourcetype/"
ALGORITHMICALLY_ENHANCED = IPTC_TERMS + "algorithmicallyEnhanced"
COMPOSITE_WITH_TRAINED = IPTC_TERMS + "compositeWithTrainedAlgorithmicMedia"

# Bytes of an XMP packet read or stripped; a larger one is dropped (Photoshop's own rarely pass 1 MB)
XMP_LIMIT = 4 << 20
NS_IPTC = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_MATTEKIT = "http://ns.mattekit.org/provenance/1.0/"

UNRECORDED = ("device",)  # options that do not change the result
FILE_DIGEST = "file_sha256"  # the record's field naming the file it is in
UNSEALED = "sha256:" + "0" * 64  # its value as the file is written, before :func:`seal`


def source_type(port) -> str:
    """The IPTC digital source type of an output port (a registry Port): scaled images are
    super-resolved (detail synthesised by a trained model), everything else is an altered photo."""
    return COMPOSITE_WITH_TRAINED if getattr(port, "size", "same") == "scaled" else ALGORITHMICALLY_ENHANCED


def changed_options(declared, options, defaults, unrecorded: tuple = ()) -> dict:
    """{option name: value as text or plain value (:meth:`mattekit.options.Option.text`)} of ``options`` that differ
    from ``defaults`` (both instances of one options dataclass whose declared options (registry Options) are
    ``declared``); file paths, options that do not change the pixels and ``unrecorded`` names are left out."""
    out = {}
    for option in declared:
        value = getattr(options, option.name)
        if option.path or option.name in UNRECORDED + unrecorded or value == getattr(defaults, option.name):
            continue
        out[option.name] = option.text(value)
    return out


def record(task, options, models: dict, port=None) -> dict:
    """The provenance record of one run of ``task`` (a registry Task) with ``options`` and ``models``
    ({model option: Predictor}); ``port``: the output written (default: the task's first)."""
    return {
        "software": f"mattekit {__version__}",
        "task": task.name,
        "models": [dict(predictor.provenance(), option=name) for name, predictor in sorted(models.items())],
        "options": changed_options(task.declared, options, task.options()),
        "digital_source_type": source_type(port or task.outputs[0]),
    }


def model_record(entry, path, digest: str, pinned: set[str]) -> dict:
    """{"name", "weights" (file name), "sha256", "derived"} of catalog ``entry`` loaded from ``path``
    (hash ``digest``); derived: ``digest`` is not among the sha256s ``pinned`` for the entry's files
    (:func:`mattekit.weights.pinned_sha256s`): a converted or user-supplied file."""
    return {"name": entry.name, "weights": path.name, "sha256": digest, "derived": digest not in pinned}


def roto_record(changed: dict, model: dict) -> dict:
    """The provenance record of a roto job: ``changed`` options (:func:`changed_options`), ``model``
    (:func:`model_record`)."""
    return {
        "software": f"mattekit {__version__}",
        "task": "roto",
        "models": [dict(model, option="model")],
        "options": changed,
        "digital_source_type": ALGORITHMICALLY_ENHANCED,
    }


def to_xmp(provenance: dict) -> bytes:
    """An XMP packet (UTF-8) holding ``provenance``."""
    from xml.sax.saxutils import quoteattr  # (it imports urllib: loaded where an XMP is written)

    attributes = {
        "Iptc4xmpExt:DigitalSourceType": provenance.get("digital_source_type", ""),
        "xmp:CreatorTool": provenance.get("software", ""),
        "mattekit:Task": provenance.get("task", ""),
        "mattekit:Record": json.dumps(provenance, sort_keys=True, separators=(",", ":")),
    }
    lines = "\n".join(f"    {key}={quoteattr(str(value))}" for key, value in attributes.items())
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{NS_IPTC}" xmlns:xmp="{NS_XMP}"\n'
        f'    xmlns:mattekit="{NS_MATTEKIT}"\n{lines}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def from_xmp(packet: bytes | str) -> dict | None:
    """The provenance in an XMP packet: mattekit's record (the last, the file's own, where a packet holds several),
    or (other software) just the IPTC digital source type and creator tool; None when the packet says neither,
    cannot be parsed or is over the XMP cap (:data:`XMP_LIMIT`)."""

    if len(packet) > XMP_LIMIT:
        return None
    text = packet.decode("utf-8", "replace") if isinstance(packet, (bytes, bytearray)) else packet
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    if start < 0 or end < 0:
        return None
    try:
        root = ElementTree.fromstring(text[start : end + len("</x:xmpmeta>")])
    except ElementTree.ParseError:
        return None
    found, record = {}, None
    for description in root.iter(f"{{{NS_RDF}}}Description"):
        raw = description.get(f"{{{NS_MATTEKIT}}}Record")
        if raw:
            try:
                record = json.loads(raw)
            except ValueError:
                pass
        for key, name in (
            ("digital_source_type", f"{{{NS_IPTC}}}DigitalSourceType"),
            ("software", f"{{{NS_XMP}}}CreatorTool"),
        ):
            value = description.get(name)
            if value is None:
                element = description.find(name)
                value = element.text if element is not None else None
            if value:
                found[key] = value
    return record if record is not None else found or None


def describe(provenance: dict) -> list[str]:
    """Lines for people: what made the file (``mattekit info``)."""
    lines = [f"software: {provenance.get('software', '?')}"]
    if provenance.get("task"):
        lines.append(f"task: {provenance['task']}")
    for model in provenance.get("models", []):
        derived = " (derived: not the catalog's file)" if model.get("derived") else ""
        lines.append(
            f"model ({model.get('option', 'model')}): {model.get('name')}, weights {model.get('weights')} "
            f"sha256 {model.get('sha256')}{derived}"
        )
    for key, given in sorted(provenance.items()):  # an input file recorded (a second shot)
        if isinstance(given, dict) and "sha256" in given:
            lines.append(f"{key.replace('_', ' ')}: {given.get('name')}, sha256 {given.get('sha256')}")
    options = provenance.get("options")
    if options is not None:
        lines.append("options: " + (", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"))
    if provenance.get("digital_source_type"):
        lines.append(f"digital source type: {provenance['digital_source_type']}")
    return lines


def sealed(provenance: dict) -> dict:
    """``provenance`` to write into a file that :func:`seal` then seals: its :data:`FILE_DIGEST` :data:`UNSEALED`."""
    return {**provenance, FILE_DIGEST: UNSEALED}


def seal(path) -> None:
    """Put into the file at ``path``, written with a :func:`sealed` record, the sha256 of its own bytes (with the
    record's value as :data:`UNSEALED`) in place of :data:`UNSEALED`, wherever that stands (a PNG chunk holding it
    gets its CRC again); a file without it is left as it is. Raises OSError."""
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as data:
        spots = _spots(data, UNSEALED.encode())
        if spots:
            value = b"sha256:" + _digest(data, spots).encode()
            for at, patch in _patches(data, spots, value):
                data[at : at + len(patch)] = patch


def intact(fd: int, provenance: dict) -> bool:
    """Whether the open file ``fd`` (a regular file; read, never changed) is the one ``provenance`` (a record read
    from it) was sealed into: its :data:`FILE_DIGEST` is a digest and the file's bytes still give it."""
    value = provenance.get(FILE_DIGEST)
    if not (isinstance(value, str) and value.startswith("sha256:") and value != UNSEALED and len(value) == 71):
        return False
    if os.fstat(fd).st_size == 0:
        return False
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
        spots = _spots(data, value.encode())
        return bool(spots) and "sha256:" + _digest(data, spots) == value


def _spots(data, value: bytes) -> list[int]:
    """Where ``value`` stands in ``data`` (offsets, in order)."""
    spots, at = [], data.find(value)
    while at >= 0:
        spots.append(at)
        at = data.find(value, at + len(value))
    return spots


def _patches(data, spots: list[int], value: bytes) -> list[tuple[int, bytes]]:
    """(offset, bytes) that put ``value`` at each of ``spots`` in ``data``, with, in a PNG, the CRC of each chunk
    holding one as for those bytes; in file order."""
    patches = [(at, value) for at in spots]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        start = 8
        while start + 12 <= len(data) and any(at >= start for at in spots):
            (length,) = struct.unpack(">I", data[start : start + 4])
            end = start + 8 + length  # where the chunk's CRC stands
            inside = [at - start - 4 for at in spots if start + 8 <= at and at + len(value) <= end]
            if inside:
                chunk = bytearray(data[start + 4 : end])
                for at in inside:
                    chunk[at : at + len(value)] = value
                patches.append((end, struct.pack(">I", zlib.crc32(chunk))))
            start = end + 4
    return sorted(patches)


def _digest(data, spots: list[int]) -> str:
    """The hex sha256 of ``data`` with :data:`UNSEALED` at each of ``spots`` (:func:`_patches`)."""
    digest, done = hashlib.sha256(), 0
    with memoryview(data) as view:  # (slices of it copy nothing)
        for at, patch in _patches(data, spots, UNSEALED.encode()):
            digest.update(view[done:at])
            digest.update(patch)
            done = at + len(patch)
        digest.update(view[done:])
    return digest.hexdigest()
