"""Drive the installed AI Matte add-on inside Blender (bpy as a module), headless. Run by
tests/hosts/blender/test_blender_e2e.py with a bpy venv's python, after install/install_blender.py installed it
into $HOME:

    python e2e_ai_matte.py --plate DAVIS/im/SEQ [--movie SEQ.mp4] --frames 4 --output DIR --renders DIR
                           [--extra-model NAME] [--model NAME] [--refused] [--checks JSON]
                           [--case NAME MODEL PLATE FRAMES]... [--exit-registered] [--shadow]

Reads the user's preferences (as Blender does at start; the module starts with factory ones), so
the installed extension is enabled; checks the job options derived from the recorded schema and
that --extra-model (only in the live worker's catalog) is offered once the worker runs; loads the
plate as an image sequence in the compositor, runs the AI Matte operator (the roto job on the
mattekit worker), renders the composite for those frames as RGBA PNGs (renders/sequence/); with
--movie, the same through a Movie Clip node (renders/movie/); prints one line ``RESULT {json}``.
With --refused (no worker answers and no Python is set), the operator runs once and its refusal is
recorded instead ("refused": the operator's outcome, or the message of the error it reported).
--checks {"folder": DIR, "colour_cases": {...}, "colour_out": DIR}: first, before any worker runs, the job
properties (job_properties.py) and the plate colour spaces (plate_colour.py) are described ("job_properties",
"plate_colour"), then the scene's settings reset. Each --case (after the plate's cases): the operator with MODEL on
the first FRAMES of the image sequence PLATE, into OUTPUT/NAME, rendered into RENDERS/NAME (result[NAME]).
With --shadow, the panel's Shadow is on for the plate's case: the group's outputs ("group_outputs") and its
Shadow output rendered alone into RENDERS/shadow ("shadow_renders") are recorded too.
Last, the add-on is disabled ("disabled", "unregistered"); with --exit-registered it is enabled again
("registered_at_exit") and the script ends without disabling it: the process must still exit.
"""

import argparse
import json
import os
import sys

import bpy


def compositor_tree(scene):
    if bpy.app.version >= (5, 0, 0):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        out = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    out.location = (500, 0)
    return tree, out.inputs[0]


def render(scene, folder):
    r = scene.render
    r.use_compositing, r.use_sequencer = True, False
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    r.filepath = os.path.join(folder, "frame_####")
    bpy.ops.render.render(animation=True)
    return sorted(os.listdir(folder))


def run_case(scene, plate_node, final, tree, output, renders, source):
    """Run the operator on the active plate node; describe the node group it made; render."""
    tree.nodes.active = plate_node  # the panel's default plate: the active Image / Movie Clip node
    settings = scene.mattekit_ai_matte
    settings.source = source
    settings.output_dir = output
    outcome = bpy.ops.mattekit.ai_matte("INVOKE_DEFAULT")
    result = {"operator": sorted(outcome), "job_forgotten": job_forgotten()}
    group = [n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"]
    result["groups"] = [n.node_tree.name for n in group]
    if group:
        matte = next(n for n in group[0].node_tree.nodes if n.bl_idname == "CompositorNodeImage")
        result["matte"] = {
            "file": bpy.path.abspath(matte.image.filepath),
            "colorspace": matte.image.colorspace_settings.name,
            "source": matte.image.source,
            "frame_start": matte.frame_start,
            "frame_offset": matte.frame_offset,
        }
        result["linked"] = {
            "plate_to_group": any(link.to_node == group[0] for link in plate_node.outputs["Image"].links),
            "group_to_output": final.is_linked and final.links[0].from_node == group[0],
        }
    # a second run resumes: nothing to compute, the same group is updated, not duplicated
    bpy.ops.mattekit.ai_matte("EXEC_DEFAULT")
    result["rerun_groups"] = len([n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"])
    result["renders"] = render(scene, renders)
    return result


def job_forgotten():
    """Whether the worker dropped the operator's ended job (it answers 404 for its id)."""
    operators = next(m for name, m in sys.modules.items() if name.endswith(".operators") and hasattr(m, "RunState"))
    worker, job_id = operators.RunState.ended
    try:
        worker.job(job_id)
    except Exception as exc:  # noqa: BLE001 - the add-on's client module: its WorkerError
        return getattr(exc, "status", None) == 404
    return False


def offered(job, model):
    """Whether the model menu offers ``model`` (setting an enum to an item it lacks raises TypeError)."""
    try:
        job.model = model
    except TypeError:
        return False
    return job.model == model


def load_plate(scene, plate, frames):
    """The first ``frames`` of the image sequence in folder ``plate`` on scene frames 1..: the scene's size and
    range set, a new compositor tree with an Image node of it linked to the output; (tree, output socket, node)."""
    files = sorted(f for f in os.listdir(plate) if f.endswith(".jpg"))
    image = bpy.data.images.load(os.path.join(plate, files[0]))
    image.source = "SEQUENCE"
    width, height = image.size
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.frame_start, scene.frame_end = 1, frames
    tree, final = compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.image = image
    node.frame_start, node.frame_offset, node.frame_duration = 1, int(files[0][:-4]) - 1, len(files)
    tree.links.new(node.outputs["Image"], final)
    return tree, final, node


def reset(schema, settings):
    """The scene's AI Matte settings back to their defaults (what a check before the operator changed)."""
    for prop in settings.job.bl_rna.properties:
        settings.job.property_unset(prop.identifier)
    settings.image, settings.clip = None, None
    for name in ("source", "output_dir"):
        settings.property_unset(name)
    return schema.job_values(settings.job, schema.job_options())


def checks(module, spec):
    """--checks: the job properties and the plate colour spaces, before any worker runs, each on the settings'
    defaults (reset after each: "reset" records the job's values after the last)."""
    import job_properties
    import plate_colour

    schema, operators = sys.modules[module + ".schema"], sys.modules[module + ".operators"]
    settings = bpy.context.scene.mattekit_ai_matte
    described = {"job_properties": job_properties.describe(schema, operators, spec["folder"])}
    reset(schema, settings)
    described["plate_colour"] = plate_colour.describe(operators, spec["colour_cases"], spec["colour_out"])
    described["job_properties"]["reset"] = reset(schema, settings)
    return described


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--plate", required=True)
    parser.add_argument("--movie", help="also: the same frames as a movie, through a Movie Clip node")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--output", required=True)
    parser.add_argument("--renders", required=True)
    parser.add_argument("--model", default="csnet-sod")
    parser.add_argument("--extra-model", help="a model the live worker offers but the installer's record does not")
    parser.add_argument("--refused", action="store_true", help="run the operator once and record its refusal")
    parser.add_argument("--checks", help="JSON: describe the job properties and plate colour spaces first")
    parser.add_argument("--case", nargs=4, action="append", default=[], metavar=("NAME", "MODEL", "PLATE", "FRAMES"))
    parser.add_argument("--exit-registered", action="store_true", help="end with the add-on enabled")
    parser.add_argument("--shadow", action="store_true", help="the plate's case with the panel's Shadow on")
    args = parser.parse_args()
    result = {"blender": bpy.app.version_string}

    bpy.ops.wm.read_userpref()  # what Blender does at start: the installed extension gets enabled
    module = "bl_ext.user_default.mattekit_ai_matte"
    result["enabled"] = module in bpy.context.preferences.addons
    assert hasattr(bpy.ops.mattekit, "ai_matte"), "the operator is not registered"

    scene = bpy.context.scene
    settings = scene.mattekit_ai_matte
    if args.checks:
        result.update(checks(module, json.loads(args.checks)))
    result["options"] = sorted(p.identifier for p in settings.job.bl_rna.properties if p.identifier != "rna_type")
    result["extra_model"] = {"before_worker": offered(settings.job, args.extra_model)} if args.extra_model else {}
    settings.job.model, settings.job.device = args.model, "cpu"  # a model the menu lacks raises TypeError
    result["model"] = settings.job.model
    tree, final, plate = load_plate(scene, args.plate, args.frames)
    if args.refused:
        tree.nodes.active = plate
        settings.source, settings.output_dir = "IMAGE", args.output
        try:
            result["refused"] = {"operator": sorted(bpy.ops.mattekit.ai_matte("EXEC_DEFAULT")), "message": None}
        except RuntimeError as exc:  # what bpy.ops raises for an operator's ERROR report: its message
            result["refused"] = {"operator": None, "message": str(exc)}
        print("RESULT " + json.dumps(result), flush=True)
        return
    settings.shadow = args.shadow
    result["sequence"] = run_case(
        scene, plate, final, tree, args.output, os.path.join(args.renders, "sequence"), "IMAGE"
    )
    if args.shadow:
        group = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup")
        result["sequence"]["group_outputs"] = [socket.name for socket in group.outputs]
        tree.links.new(group.outputs["Shadow"], final)
        result["sequence"]["shadow_renders"] = render(scene, os.path.join(args.renders, "shadow"))
    if args.extra_model:  # the worker is running now: its catalog's models are offered
        sys.modules[module + ".schema"]._models_seen["at"] = -1e9  # forget the list read before it started
        result["extra_model"]["from_live_worker"] = offered(settings.job, args.extra_model)
        settings.job.model = args.model

    if args.movie:  # the movie from scene frame 10 on (movie frame 1 at scene frame 9): frames 2.. of the movie
        clip = bpy.data.movieclips.load(args.movie)
        clip.frame_start = 9
        scene.frame_start, scene.frame_end = 10, 9 + args.frames
        tree, final = compositor_tree(scene)
        node = tree.nodes.new("CompositorNodeMovieClip")
        node.clip = clip
        tree.links.new(node.outputs["Image"], final)
        result["movie"] = run_case(
            scene, node, final, tree, os.path.join(args.output, "movie"), os.path.join(args.renders, "movie"), "CLIP"
        )

    for name, model, folder, frames in args.case:
        settings.job.model = model
        tree, final, plate = load_plate(scene, folder, int(frames))
        result[name] = run_case(
            scene, plate, final, tree, os.path.join(args.output, name), os.path.join(args.renders, name), "IMAGE"
        )
        result[name]["model"] = settings.job.model

    bpy.ops.preferences.addon_disable(module=module)
    result["disabled"] = module not in bpy.context.preferences.addons
    result["unregistered"] = not hasattr(bpy.types.Scene, "mattekit_ai_matte")
    if args.exit_registered:  # bpy 4.5 hangs at exit with classes registered: the add-on's exit hook unregisters them
        bpy.ops.preferences.addon_enable(module=module)
        result["registered_at_exit"] = hasattr(bpy.types.Scene, "mattekit_ai_matte")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
