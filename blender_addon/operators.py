"""The AI Matte operator: run a roto job on the mattekit worker, then wire the mattes in.

The worker (``mattekit serve``, started on demand with the interpreter the installer recorded)
reads the plate and writes the matte sequence itself; Blender only sends paths and polls the
job. In the UI the operator is modal: a timer polls the job, Blender's progress and status bar
show it, Esc (or the panel's Cancel button) cancels it. Without a UI (``blender -b``, bpy as a
module) ``execute`` runs the same job synchronously.
"""

import os
import threading
import time

import bpy

from . import hint_masks, nodes, schema
from .schema import client  # the installer's copy of mattekit.wire.client (None in a source checkout)

FLOAT_SUFFIXES = (".exr", ".tif", ".tiff")  # plates that may hold floats, which mattekit alone reads as linear
SHADOW = "shadow"  # the name the shadow's sequence carries beside the mattes (as an object's would)


class RunState:
    """The job in flight (one at a time), shared with the panel for progress and Cancel."""

    current = None
    ended = None  # the last job that ended: (worker, job id), for the panel's log and the tests

    def __init__(self, plan):
        self.plan = plan
        self.worker = None
        self.job_id = None
        self.error = None
        self.state = "starting"
        self.progress = 0.0
        self.message = "Starting the mattekit worker"
        self.cancel_requested = False
        self.thread = None


def settings_of(context):
    return context.scene.mattekit_ai_matte


def worker_python(context):
    """The interpreter that runs the worker: preferences, $MATTEKIT_PYTHON, or the installer's record."""
    prefs = context.preferences.addons.get(__package__)
    path = prefs.preferences.python_path if prefs is not None else ""
    if path:
        return bpy.path.abspath(path)
    return os.environ.get("MATTEKIT_PYTHON") or schema.record().get("python")


def active_plate(context):
    """The plate the panel points at: the chosen Image/Movie Clip, else the active compositor node
    (or the Movie Clip editor's clip)."""
    settings = settings_of(context)
    tree = nodes.scene_tree(context.scene)
    space = getattr(context, "space_data", None)
    if settings.source == "IMAGE":
        node = tree.nodes.active if tree is not None else None
        image = settings.image
        if image is None and node is not None and node.bl_idname == "CompositorNodeImage":
            image = node.image
        return nodes.plate_from_image(image, nodes.find_plate_node(tree, "IMAGE", image))
    clip = settings.clip
    if clip is None and space is not None and space.type == "CLIP_EDITOR":
        clip = space.clip
    if (
        clip is None
        and tree is not None
        and tree.nodes.active is not None
        and tree.nodes.active.bl_idname == "CompositorNodeMovieClip"
    ):
        clip = tree.nodes.active.clip
    return nodes.plate_from_clip(clip)


def plate_colorspace(plate):
    """The colour space Blender reads ``plate`` (a :class:`nodes.Plate`) in, for the worker: ``NAME@CONFIG`` with the
    OCIO config Blender uses ($OCIO, else its own), so that the networks get the picture Blender makes of it (ACEScg,
    Linear Rec.709, Filmic Log, AgX Log...; sRGB for an EXR or TIFF, which may hold floats that mattekit alone takes
    as linear). None where mattekit's own reading is Blender's: sRGB for the other files (PNG, JPEG, DPX, movies),
    which mattekit takes as sRGB, unconverted; and Non-Color (data: the frames are taken as the files say)."""
    name = plate.datablock.colorspace_settings.name if plate.datablock is not None else ""
    if name in ("", "Non-Color") or (name == "sRGB" and not plate.path.lower().endswith(FLOAT_SUFFIXES)):
        return None
    config = os.environ.get("OCIO") or os.path.join(
        bpy.utils.resource_path("LOCAL"), "datafiles", "colormanagement", "config.ocio"
    )
    return "%s@%s" % (name, config)


class Plan:
    """What one run does: the plate, the files, the worker options."""

    def __init__(self, context):
        scene = context.scene
        settings = settings_of(context)
        self.plate = active_plate(context)
        if self.plate is None:
            raise ValueError("Choose a plate: an image sequence or movie (Image node) or a movie clip.")
        if self.plate.kind == "IMAGE" and self.plate.datablock.source == "FILE":
            raise ValueError(
                "The image %s is a single picture; load the plate as an image sequence or movie."
                % self.plate.datablock.name
            )
        folder = settings.output_dir or "//mattes/"
        if folder.startswith("//") and not bpy.data.filepath:
            raise ValueError("Save the .blend file first, or choose an absolute output folder (it is relative now).")
        self.folder = os.path.normpath(bpy.path.abspath(folder))
        self.suffix = ".exr" if settings.file_format == "EXR" else ".png"
        self.pattern = self.plate.matte_pattern(self.folder, self.suffix)
        span = self.plate.file_range(scene.frame_start, scene.frame_end)
        if span is None:
            raise ValueError(
                "The plate has no frames inside the scene's frame range %d-%d." % (scene.frame_start, scene.frame_end)
            )
        self.first, self.last = span
        self.options = schema.job_values(settings.job, schema.job_options())
        self.options.update(plate=self.plate.path, output=self.pattern, frames="%d-%d" % span)
        if not self.options.get("colorspace"):  # the job's own choice wins; else the clip's, in Blender's config
            space = plate_colorspace(self.plate)
            if space:
                self.options["colorspace"] = space
        self.objects = []  # the objects a Mask's layers name (several subjects), else one unnamed
        self.shadow = settings.shadow  # the shadow the subject casts, as its own sequence (object_pattern(SHADOW))
        if self.shadow:
            self.options["shadow"] = self.object_pattern(SHADOW)
        if settings.hint_mask is not None:  # the subject drawn as a Mask: rendered on its frames, sent as keyframes
            frames = hint_masks.parse_frames(settings.hint_frames, scene.frame_current)
            self.options["hint_mask"], self.objects = hint_masks.hint_option(
                settings.hint_mask, self.plate, frames, os.path.join(self.folder, "hints")
            )

    def object_pattern(self, name=None):
        """The matte pattern of object ``name`` (None: the one subject): ``_NAME`` joined to the file name
        before the frame number, as mattekit roto names each object's mattes."""
        if name is None:
            return self.pattern
        head, tail = self.pattern.split("#", 1)
        stem = head.rstrip("._-")
        return "%s_%s%s#%s" % (stem, name, head[len(stem) :], tail)

    def matte_file(self, number, name=None):
        head, tail = self.object_pattern(name).split("#", 1)
        digits = tail.count("#") + 1
        return head + ("%0*d" % (digits, number)) + tail.lstrip("#")

    def missing(self):
        names = (self.objects or [None]) + ([SHADOW] if self.shadow else [])
        return [
            self.matte_file(n, name)
            for name in names
            for n in range(self.first, self.last + 1)
            if not os.path.isfile(self.matte_file(n, name))
        ]


def _start(run, python):
    """Connect (starting the worker if needed) and submit; runs on a thread, no bpy here."""
    try:
        run.worker = client.connect_recorded(schema.record(), python=python)
        run.job_id = run.worker.submit("roto", [], run.plan.options)
        run.state = "running"
    except Exception as exc:  # noqa: BLE001 - a thread: whatever happens must reach the operator
        run.error = str(exc) if isinstance(exc, client.WorkerError) else "%s: %s" % (type(exc).__name__, exc)
        run.state = "failed"


def _poll(run):
    """Refresh the run from the worker; True when the job has ended."""
    if run.state in ("starting", "failed"):
        return run.state == "failed"
    status = run.worker.job(run.job_id)
    run.progress = float(status.get("progress", 0.0))
    run.message = status.get("message") or run.message
    run.state = status["state"]
    if run.state == "failed":
        run.error = (status.get("error") or {}).get("message") or run.message
    if run.state not in ("done", "failed", "cancelled"):
        return False
    try:  # the worker keeps an ended job until it is fetched or deleted: the add-on read all it needs
        run.worker.cancel(run.job_id)
    except client.WorkerError:
        pass
    RunState.ended = (run.worker, run.job_id)
    return True


def finish(context, plan):
    """Create or update the AI Matte node group after the plate node; returns the group node."""
    missing = plan.missing()
    if missing:
        raise ValueError("%d matte file(s) are missing after the job (first: %s)." % (len(missing), missing[0]))
    tree = nodes.scene_tree(context.scene, create=True)
    plate_node = nodes.find_plate_node(tree, plan.plate.kind, plan.plate.datablock) or nodes.add_plate_node(
        tree, plan.plate
    )
    mattes = [(name, nodes.load_matte_sequence(plan.matte_file(plan.first, name))) for name in (plan.objects or [None])]
    shadow = nodes.load_matte_sequence(plan.matte_file(plan.first, SHADOW)) if plan.shadow else None
    group_node = nodes.matte_group_after(tree, plate_node)
    nodes.build_group(
        group_node.node_tree, mattes, plan.plate, "Alpha" if plan.suffix == ".exr" else "Image", shadow=shadow
    )
    nodes.wire(tree, plate_node, group_node)
    return group_node


class MATTEKIT_OT_ai_matte(bpy.types.Operator):
    """Compute a matte for every frame of the plate with mattekit and put it on the plate in the compositor"""

    bl_idname = "mattekit.ai_matte"
    bl_label = "Compute AI Matte"
    bl_options = {"REGISTER"}

    _timer = None

    @classmethod
    def poll(cls, context):
        return RunState.current is None

    def _prepare(self, context):
        if client is None:
            self.report(
                {"ERROR"},
                "mattekit_wire, the client, is missing from the add-on; install it with install/install_blender.py.",
            )
            return None
        try:
            plan = Plan(context)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return None
        python = worker_python(context)
        if not python and client.find_worker(client.recorded_state_file(schema.record()), timeout=0.5) is None:
            self.report(
                {"ERROR"},
                "No mattekit worker is running and no Python for one is set: start one with "
                "'mattekit serve', or set the worker's Python in the add-on preferences.",
            )
            return None
        run = RunState(plan)
        run.python = python
        return run

    def _end(self, context, run):
        RunState.current = None
        if run.state == "cancelled":
            self.report({"WARNING"}, "AI Matte cancelled; finished frames are kept and a new run resumes.")
            return {"CANCELLED"}
        if run.state != "done":
            self.report({"ERROR"}, "AI Matte failed: %s" % (run.error or run.message))
            return {"CANCELLED"}
        try:
            node = finish(context, run.plan)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            "AI Matte: frames %d-%d -> %s (node group '%s')"
            % (run.plan.first, run.plan.last, run.plan.pattern, node.node_tree.name),
        )
        return {"FINISHED"}

    def execute(self, context):
        run = self._prepare(context)
        if run is None:
            return {"CANCELLED"}
        RunState.current = run
        try:
            _start(run, run.python)
            last = None
            while not _poll(run):
                if run.message != last:
                    print("AI Matte: %3.0f%% %s" % (100 * run.progress, run.message))
                    last = run.message
                time.sleep(0.25)
        except client.WorkerError as exc:
            run.state, run.error = "failed", str(exc)
        finally:
            RunState.current = None
        return self._end(context, run)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        run = self._prepare(context)
        if run is None:
            return {"CANCELLED"}
        RunState.current = run
        run.thread = threading.Thread(target=_start, args=(run, run.python), daemon=True)
        run.thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = RunState.current
        if run is None:
            return self._cleanup(context, {"CANCELLED"})
        if event.type == "ESC" or run.cancel_requested:
            run.cancel_requested = True
            if run.state == "running" and run.job_id:
                try:
                    run.worker.cancel(run.job_id)
                except client.WorkerError:
                    pass
                run.state = "cancelled"
                return self._cleanup(context, self._end(context, run))
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            ended = _poll(run)
        except client.WorkerError as exc:
            run.state, run.error, ended = "failed", str(exc), True
        context.window_manager.progress_update(int(100 * run.progress))
        context.workspace.status_text_set("AI Matte: %.0f%% %s  (Esc to cancel)" % (100 * run.progress, run.message))
        for area in context.screen.areas:
            if area.type in ("NODE_EDITOR", "CLIP_EDITOR"):
                area.tag_redraw()
        if ended:
            return self._cleanup(context, self._end(context, run))
        return {"RUNNING_MODAL"}

    def _cleanup(self, context, result):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)
        RunState.current = None
        return result


class MATTEKIT_OT_ai_matte_cancel(bpy.types.Operator):
    """Cancel the running AI Matte job (finished frames are kept; running it again resumes)"""

    bl_idname = "mattekit.ai_matte_cancel"
    bl_label = "Cancel AI Matte"

    @classmethod
    def poll(cls, context):
        return RunState.current is not None

    def execute(self, context):
        RunState.current.cancel_requested = True
        return {"FINISHED"}


CLASSES = (MATTEKIT_OT_ai_matte, MATTEKIT_OT_ai_matte_cancel)
