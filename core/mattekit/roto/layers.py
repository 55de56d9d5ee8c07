"""Roto's layered EXR for compositors (``--layers``, :func:`mattekit.io.write.write_layers`): a frame's foreground
(:func:`decontaminated`) and coverage (:func:`coverage_of`), and :class:`ShotLayers`, which gathers a shot with
several objects into one file per frame once every object's job has written its matte of it: the cut-out and
foreground of their union, and one ``NAME.A`` layer per object. A journal of its own
(:class:`~mattekit.roto.store.Store`) makes the gathering resumable like every roto output."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..fsutil import sha256_file
from ..io import Picture, read_image, write_layers
from ..io.frame_patterns import FramePattern
from ..matting import estimate_foreground
from .store import Store


def decontaminated(rgb: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Foreground colours of ``rgb`` (H x W x 3, the plate's values, any range) under ``coverage``: the
    estimate is made on the values scaled into [0, 1] by their maximum and scaled back, so that values above
    1.0 are kept."""
    peak = max(1.0, float(np.max(rgb, initial=0.0)))
    return estimate_foreground(rgb / peak if peak > 1 else rgb, coverage) * peak


def coverage_of(picture: Picture, alpha: np.ndarray) -> np.ndarray:
    """The matte ``alpha`` (H x W, 0..1) where the plate frame ``picture`` is there: times its own alpha, if any."""
    scene = picture.scene if picture.scene is not None else picture.pixels
    return alpha * np.clip(scene[..., 3], 0, 1) if picture.has_alpha else alpha


class ShotLayers:
    """The layered files of a shot whose ``parts`` ({object name: its RotoJob}) write their own mattes."""

    def __init__(self, plate, pattern: FramePattern, parts: dict, personal: bool = False, confine=None):
        self.plate, self.pattern, self.parts, self.personal = plate, pattern, parts, personal
        self.store = Store(plate, {"alpha": pattern}, confine)

    def settings(self) -> dict:
        return {
            "kind": "roto-layers",
            "plate": self.plate.describe(),
            "objects": {name: part.fingerprint() for name, part in self.parts.items()},
        } | ({"personal": "kept"} if self.personal else {})

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:32]

    def write(self, frames: list[int], overwrite: bool) -> list[int]:
        """Write the layered file of each of ``frames`` not yet done (every object's matte of it is written);
        returns the frames written."""
        provenance = next(iter(self.parts.values())).provenance()
        fingerprint = self.fingerprint()
        self.store.make_folders()
        self.store.open(self.settings(), fingerprint, lambda: provenance, overwrite)
        done = set() if overwrite else self.store.finished(frames, fingerprint)
        todo = [f for f in frames if f not in done]
        self.store.clean_temporaries(todo)
        with self.store.journal() as journal:
            for frame in todo:
                picture = self.plate.read(frame)
                mattes = {
                    name: read_image(part.alpha_out.path(frame)).pixels[..., 0] for name, part in self.parts.items()
                }
                union = coverage_of(picture, np.maximum.reduce(list(mattes.values())))
                path = self.pattern.path(frame)
                scene = (picture.scene if picture.scene is not None else picture.pixels)[..., :3]
                write_layers(
                    path,
                    scene,
                    decontaminated(scene, union),
                    union,
                    half=picture.format == "EXR" and picture.bit_depth == 16,  # EXR: float unless the plate is half
                    colorspace=picture.colorspace,
                    source=self.plate.files[frame] if self.plate.kind == "images" else None,
                    provenance=provenance,
                    objects=mattes,
                    personal=self.personal,
                    confine=self.store.confine,
                )
                journal.append(
                    {
                        "frame": frame,
                        "fingerprint": fingerprint,
                        "files": {"alpha": [str(path), sha256_file(path), self.store.plate_stamp(frame)]},
                    }
                )
        return todo
