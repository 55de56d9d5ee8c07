"""Privacy by default: what tells where, who or which camera leaves every output unless the user keeps it.

The photos are built here: EXIF with its GPS IFD, maker note, serial numbers, owner, artist; XMP with personal
properties in every form (attributes in double and single quotes, another prefix for the EXIF namespace, simple
elements, structures in arrays, empty elements); IPTC IIM in a JPEG APP13 segment. Each field holds a marker that
must (``KEPT``) or must not (``PERSONAL``) be found in the output's bytes. Front ends: the CLI, the Python API, the
real worker over loopback (roto's layered EXR, the only worker output carrying a source's metadata) and roto's API.
"""

from __future__ import annotations

import io
import json
import struct
import time
import warnings

import numpy as np
import OpenImageIO as oiio
import pytest
from PIL import Image, PngImagePlugin

import mattekit
from mattekit import io as mio
from mattekit.cli import main
from mattekit.io import metadata
from mattekit.worker import operations

# field -> the marker it holds (GPS, maker note: found by Pillow, see fields_of)
PERSONAL = {
    "EXIF GPS IFD": "SECRET-GPS-DATUM",
    "EXIF Artist": "SECRET-ARTIST",
    "EXIF HostComputer": "SECRET-HOST",
    "EXIF BodySerialNumber": "SECRET-BODY",
    "EXIF LensSerialNumber": "SECRET-LENS",
    "EXIF CameraOwnerName": "SECRET-OWNER",
    "EXIF Photographer": "SECRET-PHOTOGRAPHER",
    "EXIF ImageEditor": "SECRET-EDITOR",
    "EXIF MakerNote": "SECRET-MAKERNOTE",
    'XMP exif:GPSLatitude="" ': "SECRET-XGPS-DQ",
    "XMP exif:GPSLongitude=''": "SECRET-XGPS-SQ",
    "XMP e:GPSTimeStamp='' (another prefix)": "SECRET-XGPS-PREFIX",
    "XMP <exif:GPSAltitude>": "SECRET-XGPS-ELEMENT",
    "XMP photoshop:City=''": "SECRET-CITY",
    'XMP photoshop:State=""': "SECRET-STATE",
    "XMP <photoshop:Country>": "SECRET-COUNTRY",
    "XMP Iptc4xmpCore:Location=''": "SECRET-LOCATION",
    "XMP <Iptc4xmpCore:CreatorContactInfo> struct": "SECRET-CONTACT",
    "XMP <Iptc4xmpExt:LocationCreated> bag": "SECRET-LOC-CREATED",
    "XMP <Iptc4xmpExt:LocationShown> bag": "SECRET-LOC-SHOWN",
    "XMP <Iptc4xmpExt:PersonInImage> bag": "SECRET-PERSON",
    "XMP <dc:creator> seq": "SECRET-CREATOR",
    "XMP tiff:Artist=''": "SECRET-XARTIST",
    'XMP aux:SerialNumber=""': "SECRET-AUX-SERIAL",
    "XMP <aux:OwnerName/> empty": "SECRET-AUX-OWNER",
    "XMP exifEX:BodySerialNumber=''": "SECRET-EXIFEX-BODY",
    "XMP <exifEX:CameraOwnerName>": "SECRET-EXIFEX-OWNER",
    "XMP <mwg-rs:Regions> face names": "SECRET-FACE",
    "XMP <xmpDM:shotLocation>": "SECRET-SHOT-LOCATION",
    "XMP <plus:Licensor> name": "SECRET-LICENSOR-NAME",
    "XMP <plus:Licensor> city": "SECRET-LICENSOR-CITY",
    "XMP <plus:Licensor> e-mail": "SECRET-LICENSOR-MAIL",
    "XMP <xmpMM:DerivedFrom> stRef:filePath=''": "SECRET-HOME-PATH",
    "XMP <lr:hierarchicalSubject> people": "SECRET-PEOPLE-KEYWORD",
    "XMP <dc:subject> place": "SECRET-PLACE-KEYWORD",
    "EXIF UserComment": "SECRET-USER-COMMENT",
    "EXIF ImageUniqueID": "SECRET-UNIQUE-ID",
}
IIM = {
    "IPTC IIM City (2:90)": "SECRET-IIM-CITY",
    "IPTC IIM By-line (2:80)": "SECRET-IIM-BYLINE",
    "IPTC IIM Copyright (2:116)": "IIM-COPYRIGHT",
}  # never copied, kept or not
KEPT = {
    "EXIF Make": "KEEP-MAKE",
    "EXIF ImageDescription": "KEEP-DESCRIPTION",
    "EXIF Copyright": "KEEP-COPYRIGHT",
    "EXIF DateTimeOriginal": "2026:11:25 12:00:00",
    "XMP <dc:description>": "KEEP-XDESCRIPTION",
    "XMP <dc:rights>": "KEEP-XRIGHTS",
    "XMP <dc:title>": "KEEP-XTITLE",
    "XMP photoshop:Credit=''": "KEEP-CREDIT",
    "XMP stRef:documentID=''": "KEEP-DOCUMENT",
}
PROFILE = "ICC profile"  # the JPEG's own sRGB profile, kept either way (with dpi and orientation: fields_of)

XMP = (
    """<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
 <rdf:Description rdf:about='' xmlns:exif='http://ns.adobe.com/exif/1.0/' xmlns:e='http://ns.adobe.com/exif/1.0/'
   xmlns:tiff='http://ns.adobe.com/tiff/1.0/' xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/'
   xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:aux='http://ns.adobe.com/exif/1.0/aux/'
   xmlns:exifEX='http://cipa.jp/exif/1.0/' xmlns:Iptc4xmpCore='http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/'
   xmlns:Iptc4xmpExt='http://iptc.org/std/Iptc4xmpExt/2008-02-29/'
   xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'
   xmlns:stArea='http://ns.adobe.com/xmp/sType/Area#' xmlns:xmpDM='http://ns.adobe.com/xmp/1.0/DynamicMedia/'
   xmlns:plus='http://ns.useplus.org/ldf/xmp/1.0/' xmlns:xmpMM='http://ns.adobe.com/xap/1.0/mm/'
   xmlns:stRef='http://ns.adobe.com/xap/1.0/sType/ResourceRef#' xmlns:lr='http://ns.adobe.com/lightroom/1.0/'
   tiff:Orientation='6' exif:GPSLatitude="SECRET-XGPS-DQ" exif:GPSLongitude='SECRET-XGPS-SQ'
   e:GPSTimeStamp='SECRET-XGPS-PREFIX' photoshop:City='SECRET-CITY' photoshop:State="SECRET-STATE"
   Iptc4xmpCore:Location='SECRET-LOCATION' tiff:Artist='SECRET-XARTIST' aux:SerialNumber="SECRET-AUX-SERIAL"
   exifEX:BodySerialNumber='SECRET-EXIFEX-BODY' photoshop:Credit='KEEP-CREDIT'>
  <exif:GPSAltitude>SECRET-XGPS-ELEMENT</exif:GPSAltitude>
  <photoshop:Country>SECRET-COUNTRY</photoshop:Country>
  <Iptc4xmpCore:CreatorContactInfo rdf:parseType='Resource'>
   <Iptc4xmpCore:CiEmailWork>SECRET-CONTACT</Iptc4xmpCore:CiEmailWork></Iptc4xmpCore:CreatorContactInfo>
  <Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType='Resource'>
   <Iptc4xmpExt:City>SECRET-LOC-CREATED</Iptc4xmpExt:City></rdf:li></rdf:Bag></Iptc4xmpExt:LocationCreated>
  <Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li><rdf:Description Iptc4xmpExt:Sublocation='SECRET-LOC-SHOWN'/>
   </rdf:li></rdf:Bag></Iptc4xmpExt:LocationShown>
  <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>SECRET-PERSON</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
  <dc:creator><rdf:Seq><rdf:li>SECRET-CREATOR</rdf:li></rdf:Seq></dc:creator>
  <aux:OwnerName rdf:resource='SECRET-AUX-OWNER'/>
  <exifEX:CameraOwnerName>SECRET-EXIFEX-OWNER</exifEX:CameraOwnerName>
  <mwg-rs:Regions rdf:parseType='Resource'><mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType='Resource'>
   <mwg-rs:Name>SECRET-FACE</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type></rdf:li></rdf:Bag></mwg-rs:RegionList>
  </mwg-rs:Regions>
  <xmpDM:shotLocation>SECRET-SHOT-LOCATION</xmpDM:shotLocation>
  <plus:Licensor><rdf:Seq><rdf:li rdf:parseType='Resource'><plus:LicensorName>SECRET-LICENSOR-NAME</plus:LicensorName>
   <plus:LicensorCity>SECRET-LICENSOR-CITY</plus:LicensorCity><plus:LicensorEmail>SECRET-LICENSOR-MAIL</plus:LicensorEmail>
   </rdf:li></rdf:Seq></plus:Licensor>
  <xmpMM:DerivedFrom stRef:documentID='KEEP-DOCUMENT' stRef:filePath='SECRET-HOME-PATH'/>
  <lr:hierarchicalSubject><rdf:Bag><rdf:li>People|SECRET-PEOPLE-KEYWORD</rdf:li></rdf:Bag></lr:hierarchicalSubject>
  <dc:subject><rdf:Bag><rdf:li>SECRET-PLACE-KEYWORD</rdf:li></rdf:Bag></dc:subject>
  <dc:description><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XDESCRIPTION</rdf:li></rdf:Alt></dc:description>
  <dc:rights><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XRIGHTS</rdf:li></rdf:Alt></dc:rights>
  <dc:title><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XTITLE</rdf:li></rdf:Alt></dc:title>
 </rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end='w'?>"""
).encode()


def camera_exif() -> Image.Exif:
    """EXIF as a camera and an editor write it: orientation 6, the kept fields and every personal one."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "KEEP-MAKE", "T-1", 6
    exif[0x010E], exif[0x8298] = "KEEP-DESCRIPTION", "KEEP-COPYRIGHT"
    exif[metadata.ARTIST], exif[metadata.HOST_COMPUTER] = "SECRET-ARTIST", "SECRET-HOST"
    inner = exif.get_ifd(metadata.EXIF_IFD)
    inner[0x9003], inner[0xA431], inner[0xA435] = "2026:11:25 12:00:00", "SECRET-BODY", "SECRET-LENS"
    inner[0xA430], inner[0xA437], inner[0xA438] = "SECRET-OWNER", "SECRET-PHOTOGRAPHER", "SECRET-EDITOR"
    inner[0x927C] = b"SECRET-MAKERNOTE"
    inner[0x9286] = b"ASCII\0\0\0SECRET-USER-COMMENT"
    inner[0xA420] = "SECRET-UNIQUE-ID"
    gps = exif.get_ifd(metadata.GPS_IFD)
    gps[1], gps[2], gps[18] = "N", (48.0, 51.0, 24.0), "SECRET-GPS-DATUM"
    return exif


def app13(datasets: dict[int, str]) -> bytes:
    """A JPEG APP13 segment: a Photoshop resource block 0x0404 holding IPTC IIM record-2 ``datasets``."""
    iim = b"".join(
        b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(text)) + text.encode()
        for number, text in datasets.items()
    )
    block = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iim)) + iim + bytes(len(iim) % 2)
    body = b"Photoshop 3.0\0" + block
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def laden_photo(path, fmt: str = "JPEG") -> None:
    """A small photo at ``path`` with every field above: JPEG (EXIF, XMP, IIM in APP13), TIFF (EXIF, XMP tag 700),
    PNG (eXIf, XMP iTXt) or WebP; an sRGB profile and 300 dpi (not WebP)."""
    rng = np.random.default_rng(7)
    pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = camera_exif()
    options = dict(icc_profile=icc, exif=exif.tobytes())
    if fmt == "TIFF":
        exif[700] = XMP
        options["exif"] = exif.tobytes()
    elif fmt == "PNG":
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_itxt("XML:com.adobe.xmp", XMP.decode())
    else:
        options["xmp"] = XMP
    if fmt != "WebP":
        options["dpi"] = (300, 300)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    data = buffer.getvalue()
    if fmt == "JPEG":  # IIM after the SOI marker, where Photoshop writes it
        data = data[:2] + app13({90: "SECRET-IIM-CITY", 80: "SECRET-IIM-BYLINE", 116: "IIM-COPYRIGHT"}) + data[2:]
    path.write_bytes(data)


def fields_of(path) -> dict[str, bool]:
    """{field: found in the file at ``path``} for every field above: markers in its bytes, the GPS IFD, maker note,
    profile, dpi and orientation as Pillow reads them (orientation: 1 in EXIF and XMP, since the pixels are upright)."""
    data = path.read_bytes()
    found = {name: marker.encode() in data for name, marker in {**PERSONAL, **IIM, **KEPT}.items()}
    with Image.open(path) as im:
        exif = im.getexif()
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or getattr(im, "tag_v2", {}).get(700) or b""
        found[PROFILE] = bool(im.info.get("icc_profile"))
        found["dpi"] = path.suffix == ".webp" or tuple(round(v) for v in im.info.get("dpi", (0, 0))) == (300, 300)
        xmp = xmp.decode() if isinstance(xmp, bytes) else xmp
        found["orientation 1"] = exif.get(0x0112) == 1 and "tiff:Orientation='1'" in xmp
        found["EXIF GPS IFD"] = found["EXIF GPS IFD"] or bool(exif.get_ifd(metadata.GPS_IFD))
        found["EXIF MakerNote"] = found["EXIF MakerNote"] or 0x927C in exif.get_ifd(metadata.EXIF_IFD)
    return found


def assert_private(path, keep: bool = False) -> None:
    """The file at ``path`` has every kept field, and the personal ones only with ``keep``; never the IIM."""
    found = fields_of(path)
    assert all(found[name] for name in [*KEPT, PROFILE, "dpi", "orientation 1"]), found
    assert {name: found[name] for name in PERSONAL} == dict.fromkeys(PERSONAL, keep), found
    assert not any(found[name] for name in IIM), found


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


QUICK = ["--no-white-balance", "--no-contrast", "--no-denoise"]  # enhance without a model: the metadata path alone


def test_the_test_photos_hold_every_field(tmp_path):
    """Each marker is in the source itself (else a dropped field would prove nothing)."""
    for fmt, suffix in (("JPEG", ".jpg"), ("TIFF", ".tif"), ("PNG", ".png"), ("WebP", ".webp")):
        laden_photo(tmp_path / f"p{suffix}", fmt)
        data = (tmp_path / f"p{suffix}").read_bytes()
        markers = {**PERSONAL, **KEPT, **(IIM if fmt == "JPEG" else {})}
        assert [name for name, marker in markers.items() if marker.encode() not in data] == [], fmt
    with Image.open(tmp_path / "p.jpg") as im:
        assert "SECRET-IIM-CITY".encode() in im.applist[0][1] or any(b"SECRET-IIM" in v for _, v in im.applist)


@pytest.mark.parametrize("source, output", [(".jpg", ".jpg"), (".jpg", ".png"), (".tif", ".tif"), (".png", ".webp")])
def test_the_cli_leaves_personal_metadata_out_by_default_and_keeps_it_when_asked(tmp_path, source, output):
    src = tmp_path / f"photo{source}"
    laden_photo(src, {".jpg": "JPEG", ".tif": "TIFF", ".png": "PNG"}[source])
    assert main(["enhance", str(src), "-o", str(tmp_path / f"out{output}"), *QUICK]) == 0
    assert_private(tmp_path / f"out{output}")
    assert main(["enhance", str(src), "-o", str(tmp_path / f"kept{output}"), *QUICK, "--keep-personal"]) == 0
    assert_private(tmp_path / f"kept{output}", keep=True)
    assert mio.read_provenance(tmp_path / f"kept{output}")["task"] == "enhance"


def test_a_real_cut_out_leaves_personal_metadata_out(shared, mirror, tmp_path):
    src, out = tmp_path / "photo.jpg", tmp_path / "cut.png"
    laden_photo(src)
    assert main(["remove", str(src), "-o", str(out), "--model", "u2netp"]) == 0
    assert_private(out)
    assert mio.read_provenance(out)["task"] == "remove"


def test_the_provenance_switch_and_the_old_flags(tmp_path, capsys):
    """--no-provenance leaves out mattekit's record and nothing else; --no-metadata still works as it, saying so;
    --strip-personal (now the default) too; with --keep-personal it is one sentence and exit 2."""
    src = tmp_path / "photo.jpg"
    laden_photo(src)
    assert main(["enhance", str(src), "-o", str(tmp_path / "a.jpg"), *QUICK, "--no-provenance"]) == 0
    assert mio.read_provenance(tmp_path / "a.jpg") is None
    assert_private(tmp_path / "a.jpg")
    assert " now" not in capsys.readouterr().err  # no word of the old flags
    assert main(["enhance", str(src), "-o", str(tmp_path / "b.jpg"), *QUICK, "--no-metadata"]) == 0
    assert mio.read_provenance(tmp_path / "b.jpg") is None
    assert "--no-metadata is now --no-provenance" in capsys.readouterr().err
    assert main(["enhance", str(src), "-o", str(tmp_path / "c.jpg"), *QUICK, "--strip-personal"]) == 0
    assert_private(tmp_path / "c.jpg")
    assert "--strip-personal is the default now" in capsys.readouterr().err
    assert main(["enhance", str(src), "-o", str(tmp_path / "d.jpg"), "--strip-personal", "--keep-personal"]) == 2
    assert "contradict each other" in capsys.readouterr().err and not (tmp_path / "d.jpg").exists()


def test_the_python_api_leaves_personal_metadata_out_unless_kept(tmp_path):
    src = tmp_path / "photo.jpg"
    laden_photo(src)
    assert_private(mattekit.enhance(src, output=tmp_path / "a.png", white_balance=False))
    kept = mattekit.enhance(src, output=tmp_path / "b.png", keep_personal=True, provenance=False)
    assert_private(kept, keep=True)
    assert mio.read_provenance(kept) is None
    with pytest.raises(ValueError, match="'keep_personal' must be true or false"):
        mattekit.enhance(src, output=tmp_path / "c.png", keep_personal="yes")
    with warnings.catch_warnings(record=True) as caught:  # the old keywords, as they meant
        warnings.simplefilter("always")
        old = mattekit.enhance(src, output=tmp_path / "d.png", strip_personal=False, metadata=False)
    assert {str(w.message).split("=")[0] for w in caught if w.category is DeprecationWarning} == {
        "metadata",
        "strip_personal",
    }
    assert_private(old, keep=True)
    assert mio.read_provenance(old) is None


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


def test_the_worker_offers_keep_personal_where_it_writes_a_sources_metadata():
    """Only roto's layered EXR carries a source's metadata; the pixel operations answer pixels without any, so they
    offer no such option (nor does GIMP, which shows theirs); Blender derives roto's."""
    described = {op.describe()["name"]: op.describe() for op in operations.build(operations.PathPolicy()).values()}
    roto = described["roto"]["options"]["keep_personal"]
    assert (roto["type"], roto["default"]) == ("bool", False)
    assert not [name for name, op in described.items() if name != "roto" and "keep_personal" in op["options"]]


def laden_plate(folder) -> str:
    """Two JPEG plate frames with the personal EXIF and XMP (OIIO reads them as GPS:..., Exif:..., and so on)."""
    folder.mkdir(parents=True)
    for frame in (1, 2):
        laden_photo(folder / f"p.{frame:04d}.jpg")
    return str(folder / "p.####.jpg")


def attributes_of(path) -> dict:
    image = oiio.ImageInput.open(str(path))
    try:
        return {a.name: a.value for a in image.spec().extra_attribs}
    finally:
        image.close()


PLATE_PERSONAL = ("GPS:Latitude", "Exif:BodySerialNumber", "Exif:CameraOwnerName", "Exif:LensSerialNumber", "Artist")


def test_roto_layers_through_the_real_worker_leave_the_plates_personal_metadata_out(shared, mirror, tmp_path):
    from mattekit.wire import client
    from mattekit.worker import service

    plate = laden_plate(tmp_path / "plate")
    srv = service.WorkerServer(
        state_file=str(tmp_path / "state" / "worker.json"),
        idle_timeout=None,
        threads=1,
        log=lambda text: None,
        allow_dirs=[str(tmp_path)],
    ).start_background()
    try:
        worker = client.WorkerClient(srv.url, srv.token, timeout=300)
        common = {"plate": plate, "model": "u2netp", "temporal": False}
        worker.run(
            "roto",
            [],
            dict(common, output=str(tmp_path / "a" / "m.####.png"), layers=str(tmp_path / "a" / "l.####.exr")),
        )
        worker.run(
            "roto",
            [],
            dict(
                common,
                output=str(tmp_path / "b" / "m.####.png"),
                layers=str(tmp_path / "b" / "l.####.exr"),
                keep_personal=True,
            ),
        )
    finally:
        srv.stop(wait=True)
    left, kept = attributes_of(tmp_path / "a" / "l.0001.exr"), attributes_of(tmp_path / "b" / "l.0001.exr")
    assert not [name for name, value in left.items() if "SECRET" in str(value) or name.startswith("GPS")], left
    assert set(PLATE_PERSONAL) <= set(kept) and kept["Exif:BodySerialNumber"] == "SECRET-BODY"
    assert left["Make"] == kept["Make"] == "KEEP-MAKE" and left["Copyright"].startswith("KEEP-")  # EXIF or XMP
    assert json.loads(left["mattekitProvenance"])["task"] == "roto"


def test_rotoscope_keeps_an_exr_plates_personal_attributes_only_when_asked(shared, mirror, tmp_path):
    """An EXR plate's own latitude, camera and lens serial numbers, owner (OpenEXR's standard attributes; OIIO reads
    the owner as Copyright) and its IPTC city leave the layered files; its camera model stays."""
    (tmp_path / "plate").mkdir()
    for frame in (1, 2):
        spec = oiio.ImageSpec(32, 24, 3, "half")
        for name, value in (
            ("latitude", 48.85),
            ("cameraSerialNumber", "SECRET-CAM"),
            ("lensSerialNumber", "SECRET-L"),
            ("IPTC:City", "SECRET-CITY"),
            ("cameraModel", "ALEXA 35"),
            ("owner", "SECRET-OWNER"),
        ):
            spec.attribute(name, value)
        out = oiio.ImageOutput.create("openexr")
        assert out.open(str(tmp_path / "plate" / f"p.{frame:04d}.exr"), spec), out.geterror()
        out.write_image(np.full((24, 32, 3), 0.2, np.float32))
        out.close()
    plate = str(tmp_path / "plate" / "p.####.exr")
    for name, keep in (("a", False), ("b", True)):
        mattekit.rotoscope(
            plate,
            tmp_path / name / "m.####.png",
            model="u2netp",
            temporal=False,
            layers=str(tmp_path / name / "l.####.exr"),
            keep_personal=keep,
        )
    left, kept = attributes_of(tmp_path / "a" / "l.0002.exr"), attributes_of(tmp_path / "b" / "l.0002.exr")
    personal = {"latitude", "cameraSerialNumber", "lensSerialNumber", "IPTC:City"}
    assert not personal & set(left) and personal <= set(kept), (left, kept)
    assert not [name for name, value in left.items() if "SECRET" in str(value)], left
    assert left["cameraModel"] == "ALEXA 35" and "Copyright" not in left and kept["Copyright"] == "SECRET-OWNER"
