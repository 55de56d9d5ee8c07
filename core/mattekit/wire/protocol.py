"""The worker's wire format, shared by the worker and its client, and raw pixels as they travel
(:class:`Pixels`). Standard library only, Python 3.8 syntax.

- Pixels: a request's :data:`META_HEADER` header holds JSON ``{"inputs": [{"width", "height",
  "channels", "dtype"}...], "options": {...}, "output_dtype": optional}``; the body is the inputs'
  bytes back to back (row-major, channels interleaved, little-endian). Results come back the
  same way, ``{"outputs": [...]}`` in the response's header.
- dtypes (:data:`DTYPES`): "u8" (0..255), "u16" (0..65535) and "f32" (0..1) all mean [0,1].
- Errors: a JSON body ``{"error": {"code": a short word, "message": one sentence}}``, status 4xx/5xx.
"""

import collections
import json

API_VERSION = 1
API = "v%d" % API_VERSION
META_HEADER = "X-Mattekit-Meta"
MAX_SIDE = 1 << 16  # pixels, either side
MAX_CHANNELS = 4
MAX_META_DEPTH = 6  # nesting of the meta header's JSON: {"inputs": [{...}], "options": {...}} is 3

Dtype = collections.namedtuple("Dtype", "size scale code")  # bytes per sample, the value meaning 1.0, numpy code
DTYPES = {"u8": Dtype(1, 255.0, "<u1"), "u16": Dtype(2, 65535.0, "<u2"), "f32": Dtype(4, 1.0, "<f4")}


class ProtocolError(ValueError):
    """A message that does not follow the protocol: ``code`` (bad_meta, bad_body) and one sentence."""

    def __init__(self, code, message):
        ValueError.__init__(self, message)
        self.code = code


def check_pixels(meta, name="pixels"):
    """(width, height, channels, dtype) of one pixel description, or ProtocolError naming ``name``."""
    if not isinstance(meta, dict):
        raise ProtocolError("bad_meta", "Input '%s' must be described by an object." % name)
    values = []
    for key, high in (("width", MAX_SIDE), ("height", MAX_SIDE), ("channels", MAX_CHANNELS)):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise ProtocolError(
                "bad_meta", "Input '%s': %s must be an integer from 1 to %d, not %r." % (name, key, high, value)
            )
        values.append(value)
    if not isinstance(meta.get("dtype"), str) or meta.get("dtype") not in DTYPES:
        raise ProtocolError(
            "bad_meta", "Input '%s' has dtype %r; use %s." % (name, meta.get("dtype"), ", ".join(DTYPES))
        )
    return values[0], values[1], values[2], meta["dtype"]


def byte_size(width, height, channels, dtype):
    """Bytes of ``width`` x ``height`` x ``channels`` samples of ``dtype``."""
    return width * height * channels * DTYPES[dtype].size


class Pixels(object):
    """Raw pixels: ``data`` (bytes, row-major, channels interleaved), width, height, channels, dtype;
    ``provenance``: on outputs, the worker's record of what made them (a dict: software, task,
    models with their weights sha256, changed options, IPTC digital source type) or None; ``warnings``: on
    outputs, the worker's notes on the result (a subject that came out fully transparent), one sentence each."""

    __slots__ = ("data", "width", "height", "channels", "dtype", "provenance", "warnings")

    def __init__(self, data, width, height, channels, dtype="u8"):
        if dtype not in DTYPES:
            raise ValueError("dtype must be one of %s, not %r" % (", ".join(DTYPES), dtype))
        expected = byte_size(int(width), int(height), int(channels), dtype)
        if len(data) != expected:
            raise ValueError(
                "%d bytes given for %dx%dx%d %s pixels (%d expected)"
                % (len(data), width, height, channels, dtype, expected)
            )
        self.data, self.width, self.height = data, int(width), int(height)
        self.channels, self.dtype = int(channels), dtype
        self.provenance = None
        self.warnings = []

    def meta(self):
        return {"width": self.width, "height": self.height, "channels": self.channels, "dtype": self.dtype}

    def __repr__(self):
        return "Pixels(%dx%dx%d %s)" % (self.width, self.height, self.channels, self.dtype)


def split_body(metas, body, names=None):
    """The body cut into one memoryview per pixel description (checked); ProtocolError if sizes disagree."""
    views, offset = [], 0
    view = memoryview(body)
    for index, meta in enumerate(metas):
        size = byte_size(*check_pixels(meta, names[index] if names else "output %d" % index))
        if offset + size > len(view):
            raise ProtocolError("bad_body", "The body holds %d bytes, fewer than the pixels described." % len(view))
        views.append(view[offset : offset + size])
        offset += size
    if offset != len(view):
        raise ProtocolError(
            "bad_body", "The body holds %d bytes but the pixels described take %d." % (len(view), offset)
        )
    return views


def join_body(chunks):
    """Pixel buffers (bytes-like) back to back: the body of a request or a result."""
    return b"".join(bytes(chunk) for chunk in chunks)


def json_depth(text):
    """How deeply the JSON ``text`` nests arrays and objects (strings are skipped; not validated)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def decode_meta(text):
    """The meta header's JSON object (at most :data:`MAX_META_DEPTH` deep), or ProtocolError."""
    if json_depth(text) > MAX_META_DEPTH:
        raise ProtocolError("bad_meta", "The %s header nests deeper than %d levels." % (META_HEADER, MAX_META_DEPTH))
    try:
        meta = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_meta", "The %s header is not valid JSON." % META_HEADER)
    if not isinstance(meta, dict):
        raise ProtocolError("bad_meta", "The %s header must be a JSON object." % META_HEADER)
    return meta


def error_body(code, message):
    """The JSON body of an error answer."""
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


def read_error(payload):
    """(code, message) of an error answer's body, or (None, None) when it is not one."""
    try:
        error = json.loads(payload.decode("utf-8"))["error"]
        return error.get("code"), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None
