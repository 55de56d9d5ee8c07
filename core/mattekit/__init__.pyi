"""Typed stub of mattekit: the API functions made from the task registry (tests/helpers/api_stub.py writes it)."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy
import PIL.Image
import mattekit.roto
import mattekit.runtime
import mattekit.subject.keyframe_hints

__version__: str

Input = str | os.PathLike[str] | bytes | bytearray | memoryview | PIL.Image.Image | numpy.ndarray
"""A path (the result is written beside it, its path returned), an image file's bytes (PNG bytes back), a PIL image
(a PIL image back) or an H x W [x C] array (uint8 / uint16 / float in [0, 1]; the same dtype back)."""

def load_model(
    name: str | None = None, task: str = "segment", device: str = "auto", weights: str | None = None
) -> mattekit.runtime.Predictor: ...
def clear_models() -> None: ...
def bokeh(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    focus: str | tuple[float, float] | None = None,
    focus_depth: float | None = None,
    strength: float = 1.0,
    f_number: float | None = None,
    mask_only: bool = False,
    highlight_gain: float = 2.0,
    blades: int = 0,
    rotation: float = 0.0,
    depth_model: str | mattekit.runtime.Predictor | None = None,
    depth_weights: str | os.PathLike[str] | None = None,
    segment_model: str | mattekit.runtime.Predictor | None = None,
    device: str = "auto",
    subject: Input | None = None,
) -> Any:
    """Depth of field from one photo: a lens blur keeping the subject (or the focus point) sharp.

    Options:
        focus (str, default None): focus on this point: pixels X,Y (640,400) or percent (50%,40%); default: the subject found by segmentation
        focus_depth (float, default None): focus at this depth, 0 (farthest) .. 1 (nearest)
        strength (float, default 1.0): blur strength: 1 blurs the farthest background by about 2% of the long side
        f_number (float, default None): blur like this f-number instead of a strength (f/2.8 = strength 1, f/1.4 = 2)
        mask_only (bool, default False): no depth model: keep the subject sharp, blur everything else
        highlight_gain (float, default 2.0): extra brightness for highlights before blurring (bokeh balls); 0 = none
        blades (int, default 0): aperture blades (polygonal bokeh), 0 = round, else 3 to 16
        rotation (float, default 0.0): turn the aperture polygon by this angle in degrees
        depth_model (str, default None): depth model (see `mattekit models list`); default: the catalog's
        depth_weights (str, default None): use this depth weights file instead of the catalog's download
        segment_model (str, default None): segmentation model for the subject; default: the catalog's
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def depth(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    normalize: bool = True,
) -> Any:
    """A relative depth map (1 = nearest) of each photo from a depth model.

    Options:
        model (str, default None): depth model (see `mattekit models list`); default: the catalog's
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        normalize (bool, default True): rescale the map to [0,1] (1 = nearest); off: the raw prediction (>= 0)

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def enhance(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    white_balance: bool = True,
    contrast: bool = True,
    denoise: bool = True,
    strength: float = 1.0,
) -> Any:
    """Automatic colour and tone correction: white balance, exposure and local contrast, gentle denoise.

    Options:
        white_balance (bool, default True): automatic white balance
        contrast (bool, default True): exposure and local contrast (mid-scale detail of lightness, colours kept)
        denoise (bool, default True): gentle edge-preserving denoise (chroma more than luma)
        strength (float, default 1.0): 0 = unchanged, 1 = the default correction, up to 2 = stronger

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def mask_preview(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> Any:
    """The segmentation network's raw subject mask at full size (no refinement, no matting): a quick look.

    Options:
        model (str, default None): segmentation model (see `mattekit models list`); default: the catalog's
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def matte(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    result: str | None = None,
    background: str | tuple[int, int, int] | None = None,
    shadow: str | tuple[float, float, float, float] | None = None,
    crop: float | None = None,
    decontaminate: bool = True,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    band: int | None = None,
    iterations: int = 20,
    extra_iterations: int = 0,
    trimap: Input | None = None,
    mask: Input | None = None,
    backdrop: Input | None = None,
) -> Any:
    """Alpha matting: a soft alpha and decontaminated colours from a trimap, a mask's soft edge, or a model.

    Options:
        result (str, default None): what to produce: rgba (cut-out, straight alpha), alpha (greyscale matte), foreground (the subject's colours, no alpha), composite (over --background / --backdrop) or shadow (the shadow the subject casts in the photo, greyscale: 0 none, 1 black); default rgba, or composite when a background is given
        background (str, default None): composite background: a colour (#rrggbb, r,g,b or a name) or blur[:SIGMA] (the photo's own background, blurred); implies result composite
        shadow (str, default None): keep: the shadow the subject casts in the photo, kept (black at partial alpha beside the cut-out; on a composite's background); or with a composite a drop shadow DY,DX,BLUR,OPACITY under the subject (the flag alone: 12,12,8,0.5)
        crop (float, default None): crop to the subject's box grown by this fraction of its size (e.g. 0.05)
        decontaminate (bool, default True): give partially transparent pixels the subject's own colours (no old background in hair and soft edges)
        model (str, default None): without a trimap or mask: a matting model (e.g. modnet-portrait) or a segmentation model whose mask is matted; default: the catalog's segmentation model
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        band (int, default None): half-width in pixels of the unknown band of trimaps made from masks (default: from the image size)
        iterations (int, default 20): solver iterations at the solve resolution
        extra_iterations (int, default 0): extra solver iterations at full resolution (slower, slightly sharper)

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def remove_background(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    result: str | None = None,
    background: str | tuple[int, int, int] | None = None,
    shadow: str | tuple[float, float, float, float] | None = None,
    crop: float | None = None,
    decontaminate: bool = True,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    refine: bool = True,
    matting: bool = True,
    box: str | tuple[int, int, int, int] | None = None,
    box_focus: bool = False,
    point: str | tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    exclude: str | tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    colour: bool = True,
    hint_model: str | mattekit.runtime.Predictor | None = None,
    hint_weights: str | os.PathLike[str] | None = None,
    see_through: bool = False,
    backdrop: Input | None = None,
    hint_mask: Input | None = None,
    second_shot: Input | None = None,
    see_through_mask: Input | None = None,
) -> Any:
    """Cut the subject out of each image: an RGBA cut-out, its alpha, or a composite.

    Options:
        result (str, default None): what to produce: rgba (cut-out, straight alpha), alpha (greyscale matte), foreground (the subject's colours, no alpha), composite (over --background / --backdrop) or shadow (the shadow the subject casts in the photo, greyscale: 0 none, 1 black); default rgba, or composite when a background is given
        background (str, default None): composite background: a colour (#rrggbb, r,g,b or a name) or blur[:SIGMA] (the photo's own background, blurred); implies result composite
        shadow (str, default None): keep: the shadow the subject casts in the photo, kept (black at partial alpha beside the cut-out; on a composite's background); or with a composite a drop shadow DY,DX,BLUR,OPACITY under the subject (the flag alone: 12,12,8,0.5)
        crop (float, default None): crop to the subject's box grown by this fraction of its size (e.g. 0.05)
        decontaminate (bool, default True): give partially transparent pixels the subject's own colours (no old background in hair and soft edges)
        model (str, default None): segmentation model, or a trimap-free matting model (people, birefnet-matting) whose soft alpha is used as it is (see `mattekit models list`); default: the catalog's segmentation model
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        refine (bool, default True): edge-aware upsampling of the network's mask (off: plain bilinear)
        matting (bool, default True): matte the mask's uncertain edge into a soft alpha (hair, fur) where that helps the model (IS-Net's is not: see its card; `mattekit matte` mattes any mask); off: the mask is the alpha and colours are not decontaminated
        box (str, default None): the subject lies in this box: x0,y0,x1,y1 in pixels (x1, y1 exclusive); nothing outside it is kept (answered by the hint model; with --hint-model none, a box alone gives the whole image's answer cut to the box when its subject lies in the box, else the model's answer on the box's region)
        box_focus (bool, default False): with a box and --hint-model none: the model always looks at the box's region, magnified, and the whole image's answer joins it when its subject lies in the box (finer on a small subject; may take clutter in the box for the subject)
        point (str, default None): a point x,y on the subject (repeatable): only the parts connected to these points are kept
        exclude (str, default None): a point x,y not on the subject (repeatable): the part there is left out
        colour (bool, default True): with a hint the model answers on its region: where the network is unsure, decide by the colours of the subject and the background (GrabCut inside the hint)
        hint_model (str, default None): the promptable model (SAM 2.1, see `mattekit models list`) that answers the hint (a box, include points or a hint mask; exclude points with them); default: the catalog's, its weights fetched on first use; none: the segmentation model answers it
        hint_weights (str, default None): use this hint model weights file instead of the catalog's download
        see_through (bool, default False): the subject is see-through (glass, clear plastic, a veil) on a plain backdrop: its alpha from how much of the backdrop's light comes through, its colours from the rest; labels, caps and highlights stay. One shot cannot tell dark clear glass from grey opaque plastic, so say it only of a see-through subject (an opaque grey one comes out partly transparent); on a textured backdrop the usual alpha is kept

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def select_subject(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    refine: bool = True,
    matting: bool = True,
    box: str | tuple[int, int, int, int] | None = None,
    box_focus: bool = False,
    point: str | tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    exclude: str | tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    colour: bool = True,
    hint_model: str | mattekit.runtime.Predictor | None = None,
    hint_weights: str | os.PathLike[str] | None = None,
    hint_mask: Input | None = None,
) -> Any:
    """Select the subject a box, points or a rough selection point at: its soft alpha, as a selection.

    Options:
        model (str, default None): segmentation model, or a trimap-free matting model (people, birefnet-matting) whose soft alpha is used as it is (see `mattekit models list`); default: the catalog's segmentation model
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        refine (bool, default True): edge-aware upsampling of the network's mask (off: plain bilinear)
        matting (bool, default True): matte the mask's uncertain edge into a soft alpha (hair, fur) where that helps the model (IS-Net's is not: see its card; `mattekit matte` mattes any mask); off: the mask is the alpha and colours are not decontaminated
        box (str, default None): the subject lies in this box: x0,y0,x1,y1 in pixels (x1, y1 exclusive); nothing outside it is kept (answered by the hint model; with --hint-model none, a box alone gives the whole image's answer cut to the box when its subject lies in the box, else the model's answer on the box's region)
        box_focus (bool, default False): with a box and --hint-model none: the model always looks at the box's region, magnified, and the whole image's answer joins it when its subject lies in the box (finer on a small subject; may take clutter in the box for the subject)
        point (str, default None): a point x,y on the subject (repeatable): only the parts connected to these points are kept
        exclude (str, default None): a point x,y not on the subject (repeatable): the part there is left out
        colour (bool, default True): with a hint the model answers on its region: where the network is unsure, decide by the colours of the subject and the background (GrabCut inside the hint)
        hint_model (str, default None): the promptable model (SAM 2.1, see `mattekit models list`) that answers the hint (a box, include points or a hint mask; exclude points with them); default: the catalog's, its weights fetched on first use; none: the segmentation model answers it
        hint_weights (str, default None): use this hint model weights file instead of the catalog's download

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def upscale(
    x: Input,
    output: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    provenance: bool = True,
    overwrite: bool = False,
    *,
    model: str | mattekit.runtime.Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    scale: float | None = None,
    width: int | None = None,
    strength: float = 1.0,
    tile: int | None = None,
    alpha: str = "model",
) -> Any:
    """Super-resolution: the image (grey, RGB, with or without alpha) at scale x its size.

    Options:
        model (str, default None): upscale model (see `mattekit models list`); default: the catalog's
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        scale (float, default None): output size / input size (default: the model's own factor, 2 or 4)
        width (int, default None): output width in pixels, the height keeping the aspect (instead of scale)
        strength (float, default 1.0): 1 = network detail only, 0 = plain bicubic, between = a blend of the two
        tile (int, default None): tile side in input pixels (default: chosen from free memory; 0 = no tiling)
        alpha (str, default 'model'): how transparency is upscaled: model (sharp) or bicubic (soft, faster)

    Of a file written (x a path):
        keep_personal (bool, default False): keep all the input's metadata; by default only what describes the picture and its rights is kept (title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, names, serial numbers, ids nor comments
        provenance (bool, default True): write the provenance record (mattekit version, task, model and its sha256, changed options) into the files
        overwrite (bool, default False): replace an existing output file that mattekit did not write (one it wrote, which carries its provenance record, is replaced either way)

    See mattekit.api for the kinds of x and the result."""

def rotoscope(
    plate: str | os.PathLike[str],
    output: str | os.PathLike[str],
    /,
    *,
    progress: Callable[[Any], Any] | None = None,
    frames: str | Sequence[int] | None = None,
    rgba: str | os.PathLike[str] | None = None,
    fg: str | os.PathLike[str] | None = None,
    layers: str | os.PathLike[str] | None = None,
    shadow: str | os.PathLike[str] | None = None,
    keep_personal: bool = False,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    workers: int | None = None,
    refine: bool = True,
    temporal: bool = True,
    radius: int | None = None,
    colorspace: str | None = None,
    view: str | None = None,
    bit_depth: int = 16,
    skip_missing: bool = False,
    box: str
    | mattekit.subject.keyframe_hints.KeyframeHint
    | Sequence[str | mattekit.subject.keyframe_hints.KeyframeHint]
    | None = None,
    point: str
    | mattekit.subject.keyframe_hints.KeyframeHint
    | Sequence[str | mattekit.subject.keyframe_hints.KeyframeHint]
    | None = None,
    exclude: str
    | mattekit.subject.keyframe_hints.KeyframeHint
    | Sequence[str | mattekit.subject.keyframe_hints.KeyframeHint]
    | None = None,
    hint_mask: str
    | os.PathLike[str]
    | mattekit.subject.keyframe_hints.HintMask
    | Sequence[str | mattekit.subject.keyframe_hints.HintMask]
    | None = None,
    overwrite: bool = False,
) -> mattekit.roto.Summary:
    """rotoscope(plate, output, progress=None, **options): Matte every frame of a plate (pattern, folder or movie) into a matte sequence; resumable.

    Options:
        frames (str, default None): frame range, e.g. 1001-1100, 1001-1100x2, 1001,1005; default: every frame
        rgba (str, default None): also write the cut-out to this pattern (EXR premultiplied, PNG/TIFF straight)
        fg (str, default None): also write the decontaminated foreground plate with its alpha to this pattern
        layers (str, default None): also write one EXR per frame for compositors to this pattern: R G B A (the cut-out, premultiplied) and fg.R fg.G fg.B fg.A, the plate's data window and metadata kept
        shadow (str, default None): also write the shadow the subject casts in the plate to this pattern, a matte per frame (0 none, 1 black; one subject), and with --layers as their shadow.A channel
        keep_personal (bool, default False): keep all the plate's metadata in the --layers files; by default only what describes the picture and its rights: no location, names, serial numbers nor ids (no other output carries the plate's metadata)
        model (str, default None): people (permissive people matting, Apache-2.0), objects (the default segmentation model), any segment or matte model of `mattekit models list`, or a SAM 2.1 model (sam2.1-hiera-tiny...: tracks the hinted objects with its memory); default: objects
        weights (str, default None): use this weights file instead of the catalog's download
        device (str, default 'auto'): auto (default), cpu, cuda, cuda:N or mps
        threads (int, default None): CPU threads for inference
        workers (int, default None): inference workers (default: chosen for the machine; the files do not depend on it)
        refine (bool, default True): edge-aware upsampling of the matte (off: plain bilinear)
        temporal (bool, default True): temporal consistency (motion-compensated smoothing across frames)
        radius (int, default None): temporal window: frames on each side (default: the model's, 4 for most, 2 for u2netp; 0 = off)
        colorspace (str, default None): OCIO colour space of the plate (a name or alias of $OCIO's config, else OCIO's built-in ACES studio config; `mattekit colorspaces` lists them); default: what the file says, else linear sRGB for float and sRGB for 8/16-bit files
        view (str, default None): a view of the OCIO config's sRGB display that the networks see the plate through (`mattekit colorspaces` lists them; e.g. 'ACES 2.0 - SDR 100 nits (Rec.709)', which keeps highlights above 1.0 apart); default: the plain conversion to sRGB, clipped to 0..1; the mattes are data and the --rgba/--fg plates keep the plate's values either way
        bit_depth (int, default 16): matte bits: 8/16 for PNG and TIFF, 16 (half) or 32 (float) for EXR
        skip_missing (bool, default False): process the frames that exist when some are missing
        box (str, default None): the subject lies in this box on a keyframe: FRAME:x0,y0,x1,y1 in pixels (x1, y1 exclusive; repeatable, one per keyframe and object); carried to the other frames along the motion; FRAME:x0,y0,x1,y1@NAME names its object (one matte sequence per object)
        point (str, default None): a point on the subject on a keyframe: FRAME:x,y (repeatable): only the parts connected to it are kept on that frame (FRAME:x,y@NAME: of that object)
        exclude (str, default None): a point not on the subject on a keyframe: FRAME:x,y (repeatable): the part there is left out on that frame
        hint_mask (str, default None): keyframe hint masks: a pattern such as masks/####.png (white = subject, the plate's size and frame numbers); each existing file makes its frame a keyframe (PATTERN@NAME;PATTERN@NAME: one pattern per object)
        overwrite (bool, default False): recompute every frame, even finished ones or ones made with other settings

    Returns the job's summary; see mattekit.api.run_sequence."""
