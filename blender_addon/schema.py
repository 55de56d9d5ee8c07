"""The roto job's options as Blender properties, derived from the worker's schema.

The installer records the worker's ``GET /v1/operations`` answer next to the add-on
(``mattekit_worker.json``); at register() the "roto" operation's options become the
annotations of a PropertyGroup (``scene.mattekit_ai_matte.job``):

    bool -> BoolProperty;  int / float -> Int / FloatProperty (min / max from minimum / maximum);
    choices -> EnumProperty;  str -> StringProperty (FILE_PATH for path options);
    a model option -> EnumProperty whose items come from a running worker's "models" (the
    recorded list when none runs), so a model added to the catalog appears without reinstalling;
    a number that may be left unset (nullable) -> a "use_<name>" checkbox beside its value.

The options the add-on fills itself (:data:`OWN`: the plate, the matte pattern and the frame
range, from the chosen plate, the output folder and the scene; the shadow's pattern, beside the mattes, when the
panel's Shadow is on) are not shown. No torch, no numpy.
"""

import os
import time
import zlib

import bpy

try:  # installers copy the stdlib package mattekit.wire (client and wire format) into the add-on
    from .mattekit_wire import client
except ImportError:  # pragma: no cover - a source checkout without the installer's copy
    client = None

ADDON_DIR = os.path.dirname(os.path.abspath(__file__))
OWN = ("plate", "output", "frames", "shadow")
DEFAULT_MODEL = "DEFAULT"  # the enum item meaning "the catalog's default" (model names are lower case)
MODELS_FRESH_S = 5.0  # how long a worker's model list is reused before asking again (items are asked per redraw)

_models_seen = {"at": -1e9, "menus": None}
_items_alive = []  # Blender keeps pointers into the strings of dynamic enum items: keep them referenced


def record():
    """The installer's record (the worker's schema and interpreter), {} in a source checkout."""
    return client.read_record(ADDON_DIR) if client is not None else {}


def job_options():
    """{name: option schema} of the recorded "roto" operation, the add-on's own options left out, in the worker's order."""
    operations = record().get("schema", {}).get("operations", [])
    roto = next((op for op in operations if isinstance(op, dict) and op.get("name") == "roto"), {})
    return {name: spec for name, spec in roto.get("options", {}).items() if name not in OWN}


# ---------------------------------------------------------------- the model menu


def model_menus():
    """{catalog task: [model...]} from a running worker (never started for this), else the record's."""
    now = time.monotonic()
    if _models_seen["menus"] is not None and now - _models_seen["at"] < MODELS_FRESH_S:
        return _models_seen["menus"]
    menus = None
    recorded = record()
    worker = client.find_worker(client.recorded_state_file(recorded), timeout=0.5) if client is not None else None
    if worker is not None:
        try:
            menus = worker.get_json("operations", timeout=2.0).get("models")
        except client.WorkerError:
            menus = None
    if not isinstance(menus, dict):
        menus = recorded.get("schema", {}).get("models", {})
    _models_seen.update(at=now, menus=menus)
    return menus


def _item_number(name):
    """A stable enum number per model name: the choice survives models added to or removed from the list."""
    return (zlib.crc32(name.encode("utf-8")) & 0x3FFFFFFF) or 1


def model_items(tasks, aliases=()):
    """EnumProperty items of the models for the catalog ``tasks``: "Default" first, then the schema's
    ``aliases`` (``model_aliases``: names such as people that stand for a model), then the models."""
    models = [m for task in tasks for m in model_menus().get(task, []) if isinstance(m, dict) and m.get("name")]
    default = next((m["name"] for m in models if m.get("default")), None)
    items = [(DEFAULT_MODEL, "Default" + (" (%s)" % default if default else ""), "The catalog's default model", 0)]
    for a in aliases:
        if isinstance(a, dict) and a.get("name"):
            notes = ["stands for %s" % a.get("model"), "licence: %s" % a["licence"] if a.get("licence") else ""]
            items.append((a["name"], a["name"], ". ".join(n for n in notes if n), _item_number(a["name"])))
    for m in models:
        notes = [
            m.get("description") or "",
            "licence: %s" % m["licence"] if m.get("licence") else "",
            "" if m.get("cached", True) else "not downloaded yet",
            m.get("notice") or "",
        ]
        items.append((m["name"], m["name"], ". ".join(n for n in notes if n), _item_number(m["name"])))
    _items_alive[:] = [items]
    return items


def _items_callback(tasks, aliases):
    """An EnumProperty items function (Blender requires exactly (self, context)) for the models of ``tasks``."""

    def items(_self, _context):
        return model_items(tasks, aliases)

    return items


# ---------------------------------------------------------------- options -> properties -> values


def _tasks_of(spec):
    model = spec.get("model")
    return [model] if isinstance(model, str) else list(model or [])


def _use_name(name):
    return "use_" + name


def annotations(options):
    """{property name: bpy property} for the option schemas ``options`` (see the module docstring)."""
    props = {}
    for name, spec in options.items():
        label, help_text, kind = spec.get("label") or name, spec.get("help", ""), spec.get("type")
        default = spec.get("default")
        if spec.get("model"):
            menu = _items_callback(_tasks_of(spec), spec.get("model_aliases") or ())
            props[name] = bpy.props.EnumProperty(name=label, description=help_text, items=menu)
        elif spec.get("choices"):
            items = [(str(c), str(c), "") for c in spec["choices"]]
            first = str(default) if default is not None else items[0][0]
            props[name] = bpy.props.EnumProperty(name=label, description=help_text, items=items, default=first)
        elif kind == "bool":
            props[name] = bpy.props.BoolProperty(name=label, description=help_text, default=bool(default))
        elif kind in ("int", "float"):
            limits = {}
            if spec.get("minimum") is not None:
                limits["min"] = spec["minimum"]
            if spec.get("maximum") is not None:
                limits["max"] = spec["maximum"]
            start = default if default is not None else spec.get("minimum") or 0
            if kind == "int":
                props[name] = bpy.props.IntProperty(
                    name=label, description=help_text, default=int(start), **{k: int(v) for k, v in limits.items()}
                )
            else:
                props[name] = bpy.props.FloatProperty(
                    name=label, description=help_text, default=float(start), **{k: float(v) for k, v in limits.items()}
                )
            if spec.get("nullable"):
                props[_use_name(name)] = bpy.props.BoolProperty(
                    name=label,
                    default=default is not None,
                    description="Set %s (off: the worker's default)" % label.lower(),
                )
        elif kind == "str":
            path = {"subtype": "FILE_PATH", "options": {"PATH_SUPPORTS_BLEND_RELATIVE"}} if spec.get("path") else {}
            props[name] = bpy.props.StringProperty(name=label, description=help_text, default=default or "", **path)
    return props


def job_values(group, options):
    """The worker's option values from the PropertyGroup ``group`` (unset nullable ones left out)."""
    values = {}
    for name, spec in options.items():
        if not hasattr(group, name):
            continue
        value = getattr(group, name)
        kind = spec.get("type")
        if spec.get("model"):
            value = None if value == DEFAULT_MODEL else value
        elif spec.get("choices"):
            value = {"int": int, "float": float}.get(kind, str)(value)
        elif kind in ("int", "float") and spec.get("nullable") and not getattr(group, _use_name(name)):
            value = None
        elif kind == "str":
            value = (bpy.path.abspath(value) if spec.get("path") else value) if value else None
        if value is None:  # left unset: the worker's default, said explicitly only where that is not None
            if spec.get("nullable") and spec.get("default") is not None:
                values[name] = None
            continue
        values[name] = value
    return values


def draw(layout, group, options):
    """The options in schema order; a nullable number as a checkbox and its value on one row."""
    for name, spec in options.items():
        if not hasattr(group, name):
            continue
        if spec.get("type") in ("int", "float") and spec.get("nullable") and not spec.get("choices"):
            row = layout.row(align=True)
            row.prop(group, _use_name(name), text="")
            sub = row.row(align=True)
            sub.active = getattr(group, _use_name(name))
            sub.prop(group, name)
        else:
            layout.prop(group, name)


def job_group_class(options):
    """A new PropertyGroup class holding ``options`` (registered by the add-on's register())."""
    return type(
        "MattekitRotoOptions",
        (bpy.types.PropertyGroup,),
        {"__annotations__": annotations(options), "__doc__": "The roto job's options, from the worker's schema."},
    )
