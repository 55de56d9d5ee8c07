"""Privacy in XMP itself: personal properties stripped whatever their prefix or namespace, a packet that does not
parse left out whole, linear time on hostile packets (issue 81), and the cap on a packet's size."""

from __future__ import annotations

import time

from mattekit.io import metadata
from personal_metadata import XMP


def test_xmp_without_a_prefix_is_stripped_and_a_packet_that_does_not_parse_is_left_out_whole():
    """A default namespace (no prefix) is stripped like a prefixed name; a packet that does not parse is not kept,
    nor one where a nested element of a personal name leaves a stray end tag; a clean one keeps its other
    properties and the orientation in single quotes is reset too."""
    hidden = XMP.replace(
        b"<dc:title>", b"<GPSLatitude xmlns='http://ns.adobe.com/exif/1.0/'>SECRET-BARE</GPSLatitude><dc:title>"
    )
    assert b"SECRET" not in metadata.xmp_without_personal(hidden) and b"KEEP-XTITLE" in hidden
    assert metadata.xmp_without_personal(b"<x:xmpmeta exif:GPSLatitude='1'") is None
    nested = XMP.replace(
        b"<dc:title>", b"<exif:GPSArea><exif:GPSArea>1</exif:GPSArea>SECRET-NESTED</exif:GPSArea><dc:title>"
    )
    assert metadata.xmp_without_personal(nested) is None
    clean = metadata.xmp_without_personal(XMP).decode()
    assert "KEEP-XTITLE" in clean and "SECRET" not in clean
    assert metadata.XMP_ORIENTATION.sub(r"\g<1>1", XMP.decode()).count("tiff:Orientation='1'") == 1


def hostile_packets(size: int) -> dict[str, bytes]:
    """XMP packets of about ``size`` bytes that took the old text edits quadratic time, or worse: unclosed personal
    elements (issue 81's repro), closed ones, deep nesting, empty elements, attributes, text, unclosed comments."""
    head, tail = XMP.split(b"<dc:description>", 1)
    bodies = {
        "unclosed personal": b"<exif:GPSLatitude>",
        "closed personal": b"<exif:GPSLatitude>1</exif:GPSLatitude>",
        "deep nesting": b"<rdf:Bag>",
        "empty elements": b"<a/>",
        "personal attributes": b"<rdf:Description exif:GPSLatitude='1'/>",
        "text": b" a",
        "unclosed comments": b"<!--",
        "serial names": b"<e:serialx/>",
    }
    packets = {name: head + body * (size // len(body)) + b"<dc:description>" + tail for name, body in bodies.items()}
    packets["nested closed"] = (
        head + b"<rdf:Bag>" * (size // 19) + b"</rdf:Bag>" * (size // 19) + b"<dc:description>" + tail
    )
    return packets


def test_stripping_xmp_takes_linear_time_whatever_the_packet_holds():
    """Issue 81: 281 KB of unclosed <exif:GPSLatitude> tags took 34 s to strip (quadratic); 200 KB of any hostile
    form now takes milliseconds (bounded here at 1 s of CPU, far above the linear time and far below the old)."""
    for name, packet in hostile_packets(200_000).items():
        started = time.process_time()
        stripped = metadata.xmp_without_personal(packet)
        assert time.process_time() - started < 1.0, name
        assert stripped is None or b"GPSLatitude" not in stripped, name


def test_a_3_mb_packet_is_stripped_within_the_target_and_one_over_the_cap_is_dropped():
    """Issue 81's target: 3 MB of XMP stripped in < 0.5 s (2 s of CPU allowed here: the build machines are shared);
    a packet over the cap (4 MiB) is dropped when stripping, kept whole with --keep-personal (a copy, no parse)."""
    for name, packet in hostile_packets(3 << 20).items():
        started = time.process_time()
        metadata.xmp_without_personal(packet)
        assert time.process_time() - started < 2.0, name
    over = XMP.replace(b"<dc:description>", b"<dc:source>" + b"x" * (4 << 20) + b"</dc:source><dc:description>")
    assert metadata.xmp_without_personal(over) is None
    assert metadata.without_personal(metadata.Metadata(xmp=over)).xmp is None


def test_personal_names_whatever_their_prefix_or_namespace():
    """XMP properties (prefixed or as ElementTree names them) and OIIO's attribute names, OIIO's spelling included."""
    personal = [
        "exif:GPSLatitude",
        "e:GPSTimeStamp",
        "{http://purl.org/dc/elements/1.1/}creator",
        "GPS:MapDatum",
        "GPS:LatitudeRef",
        "latitude",
        "cameraSerialNumber",
        "Exif:ImageEdtor",
        "IPTC:ContactInfoEmail",
        "drone-dji:GpsLongtitude",
        "drone-dji:AbsoluteAltitude",
        "photoshop:State",
        "mwg-rs:Regions",
        "Artist",
    ]
    kept = [
        "Make",
        "Copyright",
        "ImageDescription",
        "dc:rights",
        "dc:description",
        "xmp:CreatorTool",
        "Iptc4xmpExt:DigitalSourceType",
        "tiff:Orientation",
        "photoshop:Credit",
        "cameraModel",
        "smpte:TimeCode",
    ]
    assert [name for name in personal if not metadata.personal(name)] == []
    assert [name for name in kept if metadata.personal(name)] == []
