"""``mattekit models list | pull NAME | add NAME FILE | import PATH... | verify [NAME] | where``: the catalog and the
weights cache."""

from __future__ import annotations

from .. import catalog, weights


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list, download and verify model weights")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    a = actions.add_parser(
        "list", help="the catalog: each model on disk, in the mirror or missing, its size and licence"
    )
    a.add_argument("--task", choices=catalog.TASKS)
    a.add_argument(
        "--licences",
        action="store_true",
        help="under each model, its terms as published: the weights' "
        "licence in the publisher's words with its link, the code's licence, the training data and its terms",
    )
    a.add_argument(
        "--sources",
        action="store_true",
        help="under each model, its weights files: where each is "
        "downloaded from and how its bytes are pinned (sha256, or rembg's md5)",
    )
    a.set_defaults(func=_list)
    a = actions.add_parser("pull", help="download and verify a model's weights")
    a.add_argument("names", nargs="+", metavar="NAME")
    a.set_defaults(func=_pull)
    a = actions.add_parser(
        "add",
        help="register a local weights file for a catalog model (checked against its sha256, "
        "or rembg's md5 where that is the catalog's only pin)",
    )
    a.add_argument("name", metavar="NAME", help="the catalog model")
    a.add_argument("file", metavar="FILE", help="the weights file (.pth, .pt, .tar, .safetensors, .onnx)")
    a.add_argument(
        "--derived",
        action="store_true",
        help="accept a converted copy (another sha256) that loads into the "
        "model; recorded as derived and shown so in the provenance of outputs",
    )
    a.set_defaults(func=_add)
    a = actions.add_parser(
        "import",
        help="copy weights files you already have (e.g. rembg's ~/.u2net) into the cache: "
        "each file is matched to the catalog by its sha256 (or rembg's md5 pin)",
    )
    a.add_argument("paths", nargs="+", metavar="PATH", help="a weights file, or a folder (its files, not sub-folders)")
    a.set_defaults(func=_import)
    a = actions.add_parser("verify", help="re-check the sha256 of downloaded weights")
    a.add_argument("names", nargs="*", metavar="NAME", help="default: every downloaded model")
    a.set_defaults(func=_verify)
    a = actions.add_parser("where", help="print the weights cache folder")
    a.set_defaults(func=lambda args: print(weights.cache_dir()))


def _size(entry: catalog.ModelEntry) -> str:
    """The size of the model's weights: the file on disk, else the catalog's figure."""
    added = weights.added(entry.name)
    paths = [weights.cache_dir() / added["file"]] if added else [weights.cached_path(f) for f in entry.files]
    size = next((p.stat().st_size for p in paths if p.is_file()), None) or next(
        (f.size for f in entry.files if f.size), None
    )
    return f"{size / 1e6:.1f} MB" if size else "?"


def _pin(f: weights.WeightFile) -> str:
    """How the catalog knows a file's bytes before a download, in a few words."""
    if f.sha256:
        return f"sha256 {f.sha256}"
    return f"rembg's md5 {f.md5}" if f.md5 else "no published pin (its sha256 is recorded on first use)"


def _list(args) -> int:
    cat = catalog.load()
    defaults = set(cat.defaults.values())
    rows = []
    for m in cat.models.values():
        if args.task not in (None, m.task):
            continue
        where = cat.availability(m)
        added = weights.added(m.name)
        if added:
            where += " (added, derived)" if added.get("derived") else " (added)"
        rows.append(
            (m.name, m.task, where, _size(m), m.licence + (" (default)" if m.name in defaults else ""), m.description)
        )
    heads = ("name", "task", "weights", "size", "licence")
    widths = [max(len(r[i]) for r in rows + [heads + ("",)]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths)) + "  description")
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[5])
        if args.licences:
            for line in terms_lines(cat.models[row[0]]):
                print("    " + line)
        if args.sources:
            for f in cat.models[row[0]].files:
                print(f"    {f.name}  {f.url}  {_pin(f)}")
    aliases = cat.aliases_for(args.task)
    if aliases:
        print("aliases: " + ", ".join(f"{a} = {m.name} ({m.licence})" for a, m in aliases.items()))
    return 0


def terms_lines(entry: catalog.ModelEntry) -> list[str]:
    """What ``models list --licences`` says of a model: its weights' licence as published (quoted, with the link;
    or that none was), the code's licence, the training data, and the note."""
    terms = entry.terms
    if terms is None:
        return [f"licence: {entry.licence}"]
    checked = "" if terms.verified else " (not checked again at the link for this release)"
    weights = f'"{terms.weights}"' if terms.stated else "published with no licence"
    lines = [f"weights: {weights}  {terms.weights_url}{checked}", f"code: {terms.code}  {terms.code_url}"]
    if entry.training_data:
        lines.append(f"training data: {entry.training_data}")
    if terms.note:
        lines.append(f"note: {terms.note}")
    return lines


def _pull(args) -> int:
    cat = catalog.load()
    for entry in [cat.get(n) for n in args.names]:
        print(f"{entry.name}: {weights.model_file(entry.name, entry.files)}")
        if entry.notice:
            print(f"note: {entry.notice}")
    return 0


def _add(args) -> int:
    from ..errors import WeightsError

    entry = catalog.load().get(args.name)
    source = weights.given_file(args.file)
    digest, found = weights.matching(source, entry.files)
    if not found:
        if not args.derived:
            raise WeightsError(
                f"{source} (sha256 {digest}) is not the catalog's file for {entry.name} "
                f"({', '.join(f.name for f in entry.files)}); if it is a converted copy of the same "
                f"weights, add it with --derived."
            )
        _check_loads(entry, source)
    target = weights.add(entry.name, source, digest, found[0] if found else None, args.derived and not found)
    what = "a derived file (not the catalog's bytes; outputs say so)" if not found else "the catalog's file (hash ok)"
    print(f"{entry.name}: {source} is {what}; copied to {target}")
    return 0


def _import(args) -> int:
    """Install every file among ``args.paths`` that is a catalog file (:func:`weights.matching`: its sha256, or
    rembg's md5 where that is the catalog's only pin); one line per file."""
    from pathlib import Path

    from ..errors import InputError, WeightsError

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise InputError(f"{missing[0]} does not exist.")
    files = [f for p in map(Path, args.paths) for f in (sorted(p.iterdir()) if p.is_dir() else [p]) if f.is_file()]
    entries = list(catalog.load().models.values())
    imported = 0
    for path in files:
        try:
            digest, found = weights.matching(path, [wf for entry in entries for wf in entry.files])
        except OSError as exc:
            print(f"{path}: not read ({exc.strerror or exc})")
            continue
        matches = [(entry, wf) for entry in entries for wf in entry.files if wf in found]
        for entry, wf in matches:
            target = weights.add(entry.name, path, digest, wf, derived=False)
        if matches:
            imported += 1
            print(f"{path}: imported as {', '.join(e.name for e, _ in matches)} ({target})")
        else:
            print(f"{path}: no catalog model has this file (sha256 {digest[:16]}…)")
    if not imported:
        raise WeightsError(
            f"No file among the {len(files)} read matches a catalog model's weights by sha256 or "
            "rembg's md5; nothing was imported."
        )
    return 0


def _check_loads(entry: catalog.ModelEntry, source) -> None:
    """WeightsError unless ``source`` loads into ``entry``'s network with every key matching; an .onnx file that
    runs as it is (the catalog's ``onnx_as_is``) must load in ONNX Runtime and take the catalog's input size."""
    from pathlib import Path

    from .. import engines, nets
    from ..errors import WeightsError

    if Path(source).suffix.lower() == ".onnx" and entry.onnx_as_is:
        shape = engines.from_onnx_file(source).runner.session.get_inputs()[0].shape
        if len(shape) != 4 or any(isinstance(v, int) and v != want for v, want in zip(shape[2:], entry.input.size)):
            raise WeightsError(
                f"{source} takes inputs of shape {shape}, not the 1 x 3 x {entry.input.size[0]} x "
                f"{entry.input.size[1]} of model '{entry.name}'; it was not added."
            )
        return
    net = nets.build(entry.net, **entry.kwargs)
    try:
        net.load_state_dict(weights.load_state_dict_file(source, net, nets.family(entry.net).trace), strict=True)
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{source} does not fit model '{entry.name}' ({first[:160]}); it was not added.") from None


def _verify(args) -> int:
    cat = catalog.load()
    entries = [cat.get(n) for n in args.names] or [
        m for m in cat.models.values() if any(weights.is_cached(f) for f in m.files)
    ]
    bad = 0
    for entry in entries:
        # files are alternative sources: check the ones in the cache (or report the first as missing)
        for wf in [f for f in entry.files if weights.is_cached(f)] or entry.files[:1]:
            ok, status = weights.verify(wf)
            bad += not ok
            print(f"{entry.name}: {'ok' if ok else 'FAILED'}: {status}")
    if not entries:
        print("no model is downloaded yet; `mattekit models pull NAME` downloads one.")
    return 1 if bad else 0
