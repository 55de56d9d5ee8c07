"""What an output keeps of its source's EXIF and XMP by default (without ``--keep-personal``): allow-lists, so that
whatever is not named here (a personal field, an unknown one, a namespace not listed) is left out.

Kept: what describes the picture and its rights, and how it was taken. Title, description, headline; copyright,
rights statement, usage terms, web statement, licence, the release statuses; colour (profile, colour space, colour
mode); the camera's make and model, its lens and its settings (exposure, aperture, ISO, focal length, flash, white
balance...); orientation, resolution, the image's size; the dates it was taken and changed (the capture date tells
when, not where nor who: kept, like the camera model). Left out, among all else: the creator's and every other
person's name (the copyright notice keeps the name its owner put there), credit line, keywords (they name people and
places), locations and GPS, contacts, people shown, face and image regions, events, model details, document and
instance ids, original file names, serial numbers, owners, maker notes, comments, thumbnails, editing history,
raw-development settings, and the software and IPTC digital source type of the source (mattekit's own record names
those of the output). IPTC IIM is never copied.
"""

from __future__ import annotations

# EXIF IFD0 tags kept: description, make, model, orientation, x/y resolution and unit, date, copyright
IFD0 = {0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0132, 0x8298}
# EXIF IFD tags kept: the camera's settings, versions, colour space, size, dates (with sub-seconds and offsets),
# lens make, model and specification, the image's title, composite-image fields and gamma
EXIF_IFD = {
    *(0x829A, 0x829D, 0x8822, 0x8824, 0x8827, 0x8830, 0x8831, 0x8832, 0x8833, 0x8834, 0x8835),
    *(0x9000, 0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9101, 0x9102),
    *range(0x9201, 0x920B),  # shutter speed ... focal length
    *(0x9290, 0x9291, 0x9292, 0xA000, 0xA001, 0xA002, 0xA003, 0xA20B, 0xA20E, 0xA20F, 0xA210, 0xA215, 0xA217),
    *(0xA300, 0xA301, 0xA302),
    *range(0xA401, 0xA40D),  # custom rendered ... subject distance range
    *(0xA432, 0xA433, 0xA434, 0xA436, 0xA460, 0xA461, 0xA462, 0xA500),
}

_EXIF_SETTINGS = (
    "ExifVersion FlashpixVersion ColorSpace ComponentsConfiguration CompressedBitsPerPixel PixelXDimension "
    "PixelYDimension DateTimeOriginal DateTimeDigitized ExposureTime FNumber ExposureProgram SpectralSensitivity "
    "ISOSpeedRatings ShutterSpeedValue ApertureValue BrightnessValue ExposureBiasValue MaxApertureValue "
    "SubjectDistance MeteringMode LightSource Flash FocalLength FocalPlaneXResolution FocalPlaneYResolution "
    "FocalPlaneResolutionUnit ExposureIndex SensingMethod FileSource SceneType CFAPattern CustomRendered ExposureMode "
    "WhiteBalance DigitalZoomRatio FocalLengthIn35mmFilm SceneCaptureType GainControl Contrast Saturation Sharpness "
    "DeviceSettingDescription SubjectDistanceRange"
)
_EXIF_EX = (
    "LensMake LensModel LensSpecification PhotographicSensitivity SensitivityType StandardOutputSensitivity "
    "RecommendedExposureIndex ISOSpeed ISOSpeedLatitudeyyy ISOSpeedLatitudezzz Gamma ImageTitle"
)
# XMP namespace URI -> the local names of its properties kept
XMP = {
    "http://purl.org/dc/elements/1.1/": "title description rights",
    "http://ns.adobe.com/xap/1.0/rights/": "Marked WebStatement UsageTerms Certificate",
    "http://creativecommons.org/ns#": "license morePermissions",
    "http://ns.useplus.org/ldf/xmp/1.0/": "ModelReleaseStatus PropertyReleaseStatus",
    "http://ns.adobe.com/photoshop/1.0/": "Headline DateCreated ColorMode ICCProfile",
    "http://ns.adobe.com/xap/1.0/": "CreateDate ModifyDate MetadataDate",
    "http://ns.adobe.com/tiff/1.0/": (
        "ImageWidth ImageLength Orientation XResolution YResolution ResolutionUnit Make Model DateTime "
        "ImageDescription Copyright"
    ),
    "http://ns.adobe.com/exif/1.0/": _EXIF_SETTINGS,
    "http://cipa.jp/exif/1.0/": _EXIF_EX,
    "http://cipa.jp/exif/2.32/": _EXIF_EX,
    "http://ns.adobe.com/exif/1.0/aux/": "Lens LensInfo LensID ApproximateFocusDistance FlashCompensation",
}
_XMP = {uri: frozenset(names.split()) for uri, names in XMP.items()}


def xmp_property(uri: str, local: str) -> bool:
    """Whether the XMP property ``local`` of namespace ``uri`` is kept by default."""
    return local in _XMP.get(uri, ())


# the names OpenImageIO gives a plate's attributes (roto's --layers EXR copy them): unprefixed (TIFF-like, and
# OpenEXR's standard ones as OIIO renames them: comments -> ImageDescription, owner -> Copyright (mattekit.io.oiio
# names it owner again), capDate -> DateTime, expTime -> ExposureTime, aperture -> FNumber), under "Exif:" (the
# camera's settings above), "IPTC:" (title, headline, rights) and "smpte:" (time and key codes, all kept); not a
# camera's UUID, firmware, label or image counter
ATTRIBUTES = frozenset(
    (
        "ImageDescription Make Model Copyright DateTime PixelAspectRatio FramesPerSecond ExposureTime FNumber "
        "utcOffset isoSpeed focus cameraMake cameraModel lensMake lensModel reelName nominalFocalLength "
        "pinholeFocalLength effectiveFocalLength entrancePupilOffset tStop shutterAngle sensorCenterOffset "
        "sensorOverallDimensions sensorPhotositePitch sensorAcquisitionRectangle worldToCamera worldToNDC "
        "screenWindowCenter screenWindowWidth whiteLuminance adoptedNeutral"
    ).split()
)
_OIIO_EXIF = {
    name.lower()
    for name in (
        f"{_EXIF_SETTINGS} {_EXIF_EX} SubsecTime SubsecTimeOriginal SubsecTimeDigitized OffsetTime "
        "OffsetTimeOriginal OffsetTimeDigitized FlashPixVersion CompositeImage SourceImageNumberOfCompositeImage "
        "SourceExposureTimesOfCompositeImage"
    ).split()
}
_OIIO_IPTC = {"headline", "objectname", "copyrightnotice", "rightsusageterms", "copyrightinfourl"}


def attribute(name: str) -> bool:
    """Whether a plate's attribute ``name`` (as OpenImageIO names it: ``cameraModel``, ``Exif:FNumber``,
    ``smpte:TimeCode``) is kept by default; any other prefix (GPS, the XMP packet's own prefixes...) is not."""
    prefix, _, local = name.rpartition(":")
    if not prefix:
        return name in ATTRIBUTES
    return prefix == "smpte" or local.lower() in {"Exif": _OIIO_EXIF, "IPTC": _OIIO_IPTC}.get(prefix, ())
