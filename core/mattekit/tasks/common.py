"""Option groups several tasks declare: the model a task runs (:class:`ModelOptions`) and the texts and checks of
the device and weights options that roto declares too."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..options import option

DEVICE_HELP = "auto (default), cpu, cuda, cuda:N or mps"
WEIGHTS_HELP = "use this weights file instead of the catalog's download"
DEVICE_PARSE, WEIGHTS_PARSE = "mattekit.machine:check_device", "mattekit.weights.added:given_file"


@dataclass
class ModelOptions:
    """The model a task runs: its name, a weights file instead of the catalog's, the device.

    A task redeclares ``model`` with its own help and catalog task (the field keeps its place). The
    options of a task inherit this group first, so fields come in the order of the bases from the
    last one: ``RemoveOptions(ModelOptions, CutoutOptions)`` has the cut-out fields, then these.
    """

    model: str | None = option(None, "model (see `mattekit models list`); default: the catalog's")
    weights: Path | None = option(None, WEIGHTS_HELP, path=True, parse=WEIGHTS_PARSE, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)


KEEP_PERSONAL_HELP = ("keep the input's personal metadata: location (GPS, place names), owner and people's names, "
                      "serial numbers, maker notes; left out by default (the colour profile, dpi, orientation, "
                      "copyright and description are kept either way)")


@dataclass
class FileOptions:
    """What a file written from a file carries besides its pixels: the CLI's flags and the API's keywords of a file
    run (the worker answers pixels, which carry no metadata; roto declares ``keep_personal`` itself)."""

    keep_personal: bool = option(False, KEEP_PERSONAL_HELP, hosts=("cli", "api"))
    provenance: bool = option(True, "write the provenance record (mattekit version, task, model and its sha256, "
                              "changed options) into the files", hosts=("cli", "api"))
    overwrite: bool = option(False, "replace an existing output file that mattekit did not write (one it wrote, "
                             "which carries its provenance record, is replaced either way)", hosts=("cli", "api"))
