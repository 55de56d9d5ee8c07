"""Where a result goes in GIMP: a layer mask, a new cut-out layer, a new image or layer, the selection, the kept
shadow's own layer; and the worker's record of what made it, attached to what it went to."""

import json

from gi.repository import Gegl, Gimp

from gimp_pixels import crop, write_pixels
from gimp_schema import makes_matte

PROVENANCE = "mattekit-provenance"  # the parasite holding what made a result (JSON), saved in XCF files


def new_layer(image, layer, name, with_alpha, copy=False):
    """A new layer just above ``layer``, at its offsets: a copy of it, or transparent."""
    if copy:
        new = layer.copy()
        new.set_name(name)
    else:
        kind = Gimp.ImageType.RGBA_IMAGE if with_alpha else Gimp.ImageType.RGB_IMAGE
        new = Gimp.Layer.new(image, name, layer.get_width(), layer.get_height(), kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(new, layer.get_parent(), image.get_item_position(layer))
    _, ox, oy = layer.get_offsets()
    new.set_offsets(ox, oy)
    if not copy:
        new.fill(Gimp.FillType.TRANSPARENT)
    return new


def place(image, layer, op, output, result, region, from_selection, interactive):
    """Put the result where ``output`` says; returns the layer or new image made or changed.

    One channel of coverage: into the layer mask, or a new cut-out layer (a copy of the layer with it
    as alpha). A scaled image: a new image, or a new layer over the image scaled to match. Another
    image: a new layer above (transparent outside the region for cut-outs, else the layer's own pixels).
    Writes merge through the selection unless the selection was the input.
    """
    x, y = region[:2]
    through = not from_selection
    port = op["outputs"][0]
    if output == "selection":
        return select(image, layer, x, y, result)
    if result.channels == 1 and makes_matte(op):
        target = layer
        if output == "layer":
            target = new_layer(image, layer, layer.get_name() + " (cut out)", True, copy=True)
            if target.get_mask() is not None:
                target.remove_mask(Gimp.MaskApplyMode.APPLY)
            if not target.has_alpha():
                target.add_alpha()
            layer.set_visible(False)
        mask = target.get_mask()
        if mask is None:
            mask = target.create_mask(Gimp.AddMaskType.BLACK)
            target.add_mask(mask)
        write_pixels(mask, x, y, result, through, matte=True)
        if target is not layer:
            target.remove_mask(Gimp.MaskApplyMode.APPLY)
        return target
    if port["size"] == "scaled":
        factor = float(result.width) / layer.get_width()
        name = "%s (x%g)" % (layer.get_name(), round(factor, 3))
        if output == "image":
            made = Gimp.Image.new_with_precision(
                result.width, result.height, Gimp.ImageBaseType.RGB, image.get_precision()
            )
            target = Gimp.Layer.new(
                made,
                name,
                result.width,
                result.height,
                Gimp.ImageType.RGBA_IMAGE if result.channels in (2, 4) else Gimp.ImageType.RGB_IMAGE,
                100.0,
                Gimp.LayerMode.NORMAL,
            )
            made.insert_layer(target, None, 0)
            write_pixels(target, 0, 0, result, through_selection=False)
            if interactive:
                Gimp.Display.new(made)
            return made
        factor_y = float(result.height) / layer.get_height()
        image.scale(int(round(image.get_width() * factor)), int(round(image.get_height() * factor_y)))
        target = new_layer(image, layer, name, result.channels in (2, 4))
        write_pixels(target, 0, 0, result, through_selection=False)
        return target
    cut_out = "result" in op["options"] and result.channels in (2, 4)  # an RGBA cut-out, not a composite
    name = layer.get_name() + (" (cut out)" if cut_out else " (%s)" % op["name"])
    target = new_layer(image, layer, name, result.channels in (2, 4), copy=not cut_out)
    if cut_out:
        layer.set_visible(False)
    write_pixels(target, x, y, result, through)
    return target


def place_shadow(image, layer, target, shadow, region):
    """The photo's own shadow (one channel of coverage for ``region`` of ``layer``) as its own layer just under
    ``target`` (the cut-out): black, the shadow as its layer mask, so the user can move, soften or fade it."""
    shade = Gimp.Layer.new(
        image,
        layer.get_name() + " (shadow)",
        layer.get_width(),
        layer.get_height(),
        Gimp.ImageType.RGBA_IMAGE,
        100.0,
        Gimp.LayerMode.NORMAL,
    )
    image.insert_layer(shade, target.get_parent(), image.get_item_position(target) + 1)
    _, ox, oy = layer.get_offsets()
    shade.set_offsets(ox, oy)
    Gimp.context_push()
    try:
        Gimp.context_set_foreground(Gegl.Color.new("black"))
        shade.fill(Gimp.FillType.FOREGROUND)
    finally:
        Gimp.context_pop()
    mask = shade.create_mask(Gimp.AddMaskType.BLACK)
    shade.add_mask(mask)
    write_pixels(mask, region[0], region[1], shadow, through_selection=False, matte=True)
    return shade


def select(image, layer, x, y, result):
    """Make one channel of coverage at (x, y) of ``layer`` the image's selection (one undo step): written into a
    temporary channel the image's size, replacing the selection with it; parts beyond the image are cut off."""
    _, ox, oy = layer.get_offsets()
    channel = Gimp.Channel.new(
        image, "mattekit selection", image.get_width(), image.get_height(), 100.0, Gegl.Color.new("black")
    )
    image.insert_channel(channel, None, 0)
    try:
        inside = crop(result, x + ox, y + oy, image.get_width(), image.get_height())
        if inside is not None:
            write_pixels(channel, inside[0], inside[1], inside[2], through_selection=False, matte=True)
        image.select_item(Gimp.ChannelOps.REPLACE, channel)
    finally:
        image.remove_channel(channel)
    return image.get_selection()


def attach_provenance(target, record):
    """Keep the worker's record of what made a result (mattekit version, task, model and weights sha256,
    changed options, IPTC digital source type) with the layer or image it went to: a persistent parasite."""
    if record:
        data = list(json.dumps(record, sort_keys=True).encode("utf-8"))
        target.attach_parasite(Gimp.Parasite.new(PROVENANCE, Gimp.PARASITE_PERSISTENT, data))
