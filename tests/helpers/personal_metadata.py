"""Photos laden with personal metadata, for the privacy tests (tests/unit/io/test_privacy*.py): EXIF with its GPS IFD,
maker note, serial numbers, owner, artist, a tag off the allow-list; XMP with personal properties in every form
(issue 91's fields, faces of three kinds, a comment, a processing instruction, an unknown namespace) and the allowed
ones; IPTC IIM in a JPEG APP13 segment. Each field holds a marker that must (``KEPT``) or must not (``PERSONAL``) be found in an output's bytes;
:func:`assert_private` checks a file for them."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
from PIL import Image, PngImagePlugin

from mattekit.io import metadata

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
    "EXIF RelatedSoundFile (a tag not allowed)": "SECRET-SOUND-FILE",
    "XMP photoshop:Credit=''": "SECRET-CREDIT",
    "XMP <xmpMM:DerivedFrom> stRef:documentID=''": "SECRET-DERIVED-ID",
    "XMP <Iptc4xmpExt:ArtworkOrObject> AOCreator": "SECRET-AO-CREATOR",
    "XMP <plus:ModelReleaseID>": "SECRET-MODEL-RELEASE",
    "XMP <Iptc4xmpExt:Event>": "SECRET-EVENT",
    "XMP <Iptc4xmpExt:ImageRegion> person name": "SECRET-IPTC-REGION",
    "XMP <Iptc4xmpExt:ModelAge>": "SECRET-MODEL-AGE",
    "XMP <Iptc4xmpExt:AddlModelInfo>": "SECRET-ADDL-MODEL",
    "XMP <Iptc4xmpExt:PersonHeard>": "SECRET-PERSON-HEARD",
    "XMP <xmpDM:director>": "SECRET-DIRECTOR",
    "XMP <xmpDM:composer>": "SECRET-COMPOSER",
    "XMP xmpMM:PreservedFileName=''": "SECRET-PRESERVED-NAME",
    "XMP crs:RawFileName=''": "SECRET-RAW-NAME",
    "XMP xmpMM:DocumentID=''": "SECRET-DOCUMENT-ID",
    "XMP <xmpMM:OriginalDocumentID>": "SECRET-ORIGINAL-ID",
    "XMP xmpRights:Owner": "SECRET-RIGHTS-OWNER",
    "XMP <MP:RegionInfo> Microsoft face name": "SECRET-MS-FACE",
    "XMP GPS in a comment": "SECRET-COMMENT-GPS",
    "XMP processing instruction": "SECRET-PI",
    "XMP a property of an unknown namespace": "SECRET-UNKNOWN",
    "EXIF Software (the output's record names its own)": "SOURCE-SOFTWARE",
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
    "XMP photoshop:Headline=''": "KEEP-HEADLINE",
    "XMP <xmpRights:UsageTerms>": "KEEP-USAGE-TERMS",
    "XMP xmpRights:WebStatement=''": "KEEP-WEB-STATEMENT",
    "XMP <cc:license rdf:resource>": "KEEP-LICENCE",
    "XMP photoshop:ICCProfile=''": "KEEP-ICC-NAME",
    "XMP exif:ExposureTime='' (another prefix)": "KEEP-XEXPOSURE",
    "XMP <exifEX:LensModel>": "KEEP-XLENS",
    "XMP xmp:CreateDate=''": "KEEP-XDATE",
    "EXIF LensModel": "KEEP-LENS-MODEL",
}
SETTINGS = {0x829A: 0.004, 0x829D: 2.8, 0x8827: 200, 0x920A: 50.0, 0xA001: 1}  # exposure, f-number, ISO, focal, sRGB
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
   exifEX:BodySerialNumber='SECRET-EXIFEX-BODY' photoshop:Credit='SECRET-CREDIT'
   xmlns:xmpRights='http://ns.adobe.com/xap/1.0/rights/' xmlns:cc='http://creativecommons.org/ns#'
   xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmlns:crs='http://ns.adobe.com/camera-raw-settings/1.0/'
   xmlns:MP='http://ns.microsoft.com/photo/1.2/' xmlns:MPRI='http://ns.microsoft.com/photo/1.2/t/RegionInfo#'
   xmlns:MPReg='http://ns.microsoft.com/photo/1.2/t/Region#' photoshop:Headline='KEEP-HEADLINE'
   xmpRights:WebStatement='KEEP-WEB-STATEMENT' photoshop:ICCProfile='KEEP-ICC-NAME' e:ExposureTime='KEEP-XEXPOSURE'
   xmp:CreateDate='KEEP-XDATE' xmpMM:PreservedFileName='SECRET-PRESERVED-NAME' crs:RawFileName='SECRET-RAW-NAME'
   xmpMM:DocumentID='SECRET-DOCUMENT-ID'>
  <!-- <exif:GPSLatitude>SECRET-COMMENT-GPS</exif:GPSLatitude> --><?secret SECRET-PI?>
  <Iptc4xmpExt:ArtworkOrObject><rdf:Bag><rdf:li rdf:parseType='Resource'>
   <Iptc4xmpExt:AOCreator><rdf:Seq><rdf:li>SECRET-AO-CREATOR</rdf:li></rdf:Seq></Iptc4xmpExt:AOCreator>
   <Iptc4xmpExt:AOTitle><rdf:Alt><rdf:li xml:lang='x-default'>A painting</rdf:li></rdf:Alt></Iptc4xmpExt:AOTitle>
  </rdf:li></rdf:Bag></Iptc4xmpExt:ArtworkOrObject>
  <plus:ModelReleaseID><rdf:Bag><rdf:li>SECRET-MODEL-RELEASE</rdf:li></rdf:Bag></plus:ModelReleaseID>
  <Iptc4xmpExt:Event><rdf:Alt><rdf:li xml:lang='x-default'>SECRET-EVENT</rdf:li></rdf:Alt></Iptc4xmpExt:Event>
  <Iptc4xmpExt:ImageRegion><rdf:Bag><rdf:li rdf:parseType='Resource'><Iptc4xmpExt:PersonInImage><rdf:Bag>
   <rdf:li>SECRET-IPTC-REGION</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage></rdf:li></rdf:Bag>
  </Iptc4xmpExt:ImageRegion>
  <Iptc4xmpExt:ModelAge><rdf:Bag><rdf:li>SECRET-MODEL-AGE</rdf:li></rdf:Bag></Iptc4xmpExt:ModelAge>
  <Iptc4xmpExt:AddlModelInfo>SECRET-ADDL-MODEL</Iptc4xmpExt:AddlModelInfo>
  <Iptc4xmpExt:PersonHeard><rdf:Bag><rdf:li>SECRET-PERSON-HEARD</rdf:li></rdf:Bag></Iptc4xmpExt:PersonHeard>
  <xmpDM:director>SECRET-DIRECTOR</xmpDM:director><xmpDM:composer>SECRET-COMPOSER</xmpDM:composer>
  <xmpMM:OriginalDocumentID>SECRET-ORIGINAL-ID</xmpMM:OriginalDocumentID>
  <xmpRights:Owner><rdf:Bag><rdf:li>SECRET-RIGHTS-OWNER</rdf:li></rdf:Bag></xmpRights:Owner>
  <MP:RegionInfo rdf:parseType='Resource'><MPRI:Regions><rdf:Bag><rdf:li rdf:parseType='Resource'>
   <MPReg:PersonDisplayName>SECRET-MS-FACE</MPReg:PersonDisplayName></rdf:li></rdf:Bag></MPRI:Regions>
  </MP:RegionInfo>
  <foo:Note xmlns:foo='http://example.com/ns/'>SECRET-UNKNOWN</foo:Note>
  <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-USAGE-TERMS</rdf:li></rdf:Alt></xmpRights:UsageTerms>
  <cc:license rdf:resource='https://example.com/KEEP-LICENCE'/>
  <exifEX:LensModel>KEEP-XLENS</exifEX:LensModel>
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
  <xmpMM:DerivedFrom stRef:documentID='SECRET-DERIVED-ID' stRef:filePath='SECRET-HOME-PATH'/>
  <lr:hierarchicalSubject><rdf:Bag><rdf:li>People|SECRET-PEOPLE-KEYWORD</rdf:li></rdf:Bag></lr:hierarchicalSubject>
  <dc:subject><rdf:Bag><rdf:li>SECRET-PLACE-KEYWORD</rdf:li></rdf:Bag></dc:subject>
  <dc:description><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XDESCRIPTION</rdf:li></rdf:Alt></dc:description>
  <dc:rights><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XRIGHTS</rdf:li></rdf:Alt></dc:rights>
  <dc:title><rdf:Alt><rdf:li xml:lang='x-default'>KEEP-XTITLE</rdf:li></rdf:Alt></dc:title>
 </rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end='w'?>"""
).encode()


def laden_exif() -> Image.Exif:
    """EXIF as a camera and an editor write it: orientation 6, the kept fields and every personal one."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "KEEP-MAKE", "T-1", 6
    exif[0x010E], exif[0x8298], exif[0x0131] = "KEEP-DESCRIPTION", "KEEP-COPYRIGHT", "SOURCE-SOFTWARE"
    exif[metadata.ARTIST], exif[metadata.HOST_COMPUTER] = "SECRET-ARTIST", "SECRET-HOST"
    inner = exif.get_ifd(metadata.EXIF_IFD)
    inner[0x9003], inner[0xA431], inner[0xA435] = "2026:11:25 12:00:00", "SECRET-BODY", "SECRET-LENS"
    inner[0xA430], inner[0xA437], inner[0xA438] = "SECRET-OWNER", "SECRET-PHOTOGRAPHER", "SECRET-EDITOR"
    inner[0x927C] = b"SECRET-MAKERNOTE"
    inner[0x9286] = b"ASCII\0\0\0SECRET-USER-COMMENT"
    inner[0xA420], inner[0xA004], inner[0xA434] = "SECRET-UNIQUE-ID", "SECRET-SOUND-FILE", "KEEP-LENS-MODEL"
    for tag, value in SETTINGS.items():
        inner[tag] = value
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
    exif = laden_exif()
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
        found["orientation 1"] = exif.get(0x0112) == 1 and re.search("tiff:Orientation=[\"']1[\"']", xmp) is not None
        inner = exif.get_ifd(metadata.EXIF_IFD)
        found["EXIF camera settings"] = {tag: inner.get(tag) for tag in SETTINGS} == SETTINGS
        found["EXIF GPS IFD"] = found["EXIF GPS IFD"] or bool(exif.get_ifd(metadata.GPS_IFD))
        found["EXIF MakerNote"] = found["EXIF MakerNote"] or 0x927C in exif.get_ifd(metadata.EXIF_IFD)
    return found


def assert_private(path, keep: bool = False) -> None:
    """The file at ``path`` has every kept field, and the personal ones only with ``keep``; never the IIM."""
    found = fields_of(path)
    assert all(found[name] for name in [*KEPT, PROFILE, "dpi", "orientation 1", "EXIF camera settings"]), found
    assert {name: found[name] for name in PERSONAL} == dict.fromkeys(PERSONAL, keep), found
    assert not any(found[name] for name in IIM), found
