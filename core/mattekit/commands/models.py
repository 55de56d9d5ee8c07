"""``mattekit models list | pull NAME | verify [NAME] | where``: the catalog and the weights cache."""
from __future__ import annotations

from .. import catalog, weights


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list, download and verify model weights")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    a = actions.add_parser("list", help="the catalog, with what is downloaded")
    a.add_argument("--task", choices=catalog.TASKS)
    a.set_defaults(func=_list)
    a = actions.add_parser("pull", help="download and verify a model's weights")
    a.add_argument("names", nargs="+", metavar="NAME")
    a.set_defaults(func=_pull)
    a = actions.add_parser("verify", help="re-check the sha256 of downloaded weights")
    a.add_argument("names", nargs="*", metavar="NAME", help="default: every downloaded model")
    a.set_defaults(func=_verify)
    a = actions.add_parser("where", help="print the weights cache folder")
    a.set_defaults(func=lambda args: print(weights.cache_dir()))


def _list(args) -> int:
    cat = catalog.load()
    defaults = set(cat.defaults.values())
    rows = [(m.name, m.task, "yes" if any(weights.is_cached(f) for f in m.files) else "no",
             m.licence + (" (default)" if m.name in defaults else ""), m.description)
            for m in cat.models.values() if args.task in (None, m.task)]
    widths = [max(len(r[i]) for r in rows + [("name", "task", "cached", "licence", "")]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("name", "task", "cached", "licence"), widths)) + "  description")
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[4])
    aliases = cat.aliases_for(args.task)
    if aliases:
        print("aliases: " + ", ".join(f"{a} = {m.name} ({m.licence})" for a, m in aliases.items()))
    return 0


def _pull(args) -> int:
    cat = catalog.load()
    for entry in [cat.get(n) for n in args.names]:
        print(f"{entry.name}: {weights.fetch_first(entry.files)}")
        if entry.notice:
            print(f"note: {entry.notice}")
    return 0


def _verify(args) -> int:
    cat = catalog.load()
    entries = [cat.get(n) for n in args.names] or [m for m in cat.models.values() if any(weights.is_cached(f) for f in m.files)]
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
