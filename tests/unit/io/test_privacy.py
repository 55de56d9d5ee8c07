"""Privacy by default: every output keeps only an allow-list of its source's metadata (mattekit.io.kept: what
describes the picture and its rights) unless the user keeps all of it.

The photos are built in tests/helpers/personal_metadata.py: EXIF with its GPS IFD, maker note, serial numbers,
owner, artist; XMP with personal properties in every form (attributes in double and single quotes, another prefix
for the EXIF namespace, simple elements, structures in arrays, empty elements); IPTC IIM in a JPEG APP13 segment.
Each field holds a marker that must (``KEPT``) or must not (``PERSONAL``) be found in the output's bytes. Front ends:
the CLI, the Python API, the real worker over loopback (roto's layered EXR, the only worker output carrying a
source's metadata) and roto's API. XMP's own stripping: test_privacy_xmp.py.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import OpenImageIO as oiio
import pytest
from PIL import Image

import mattekit
from mattekit import io as mio
from mattekit.cli import main
from mattekit.worker import operations
from personal_metadata import IIM, KEPT, PERSONAL, assert_private, laden_photo


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
