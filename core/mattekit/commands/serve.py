"""``mattekit serve``: run the local worker that the GIMP plug-in and the Blender add-on talk to."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading

from ..errors import MattekitError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the local worker for GIMP and Blender",
        description="Run the local worker: an HTTP server on loopback that keeps models loaded. Its address and "
        "a random token go to a per-user state file (0600) that the plug-ins read.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else exposes the worker to the network)",
    )
    p.add_argument("--port", type=int, default=0, help="port (default: a random free one)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="exit after this long without requests (default 900; 0 = never)",
    )
    p.add_argument(
        "--max-request-mb",
        type=float,
        default=1024.0,
        metavar="MB",
        help="largest request body accepted (default 1024)",
    )
    p.add_argument(
        "--state-file",
        default=None,
        help="where to write the address and token (default: $MATTEKIT_WORKER_STATE, "
        "$MATTEKIT_HOME/worker.json or the per-user state folder)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: torch's choice)")
    p.add_argument(
        "--max-queued-mb",
        type=float,
        default=2048.0,
        metavar="MB",
        help="decoded (float32) pixels that requests being read and queued jobs may reserve "
        "before new ones get 503 + Retry-After (default 2048)",
    )
    p.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder roto may read plates from and write mattes to (repeatable; also "
        "$MATTEKIT_ALLOW_DIRS; default: your home folder, hidden folders excluded)",
    )
    p.add_argument(
        "--log-file", default=None, help="write the log here (rotated at 1 MiB, one old file kept) instead of stderr"
    )
    p.add_argument("--replace", action="store_true", help="ask a running worker to stop, then take its place")
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_arguments(args: argparse.Namespace, state_file: str) -> None:
    """Every flag checked before anything starts: one sentence naming the flag (MattekitError)."""
    import math
    import os
    import socket
    from pathlib import Path

    if not 0 <= args.port <= 65535:
        raise MattekitError(f"--port must be from 0 to 65535, not {args.port}.")
    for flag, value, low in (
        ("--idle-timeout", args.idle_timeout, 0.0),
        ("--max-request-mb", args.max_request_mb, None),
        ("--max-queued-mb", args.max_queued_mb, None),
    ):
        if not math.isfinite(value) or (value < low if low is not None else value <= 0):
            need = "a number of seconds, 0 or more (0 = never)" if low is not None else "a number of MB above 0"
            raise MattekitError(f"{flag} must be {need}, not {value:g}.")
    try:
        socket.getaddrinfo(args.host, None)
    except (OSError, UnicodeError):
        raise MattekitError(
            f"--host {args.host!r} is not an address this machine can listen on (use 127.0.0.1, the default)."
        ) from None
    for folder in args.allow_dir:
        if not Path(folder).expanduser().is_dir():
            raise MattekitError(f"--allow-dir {folder} is not an existing folder.")
    for flag, path in (("--log-file", args.log_file), ("--state-file", state_file)):
        if path is None:
            continue
        target = Path(path).expanduser().absolute()
        if target.is_dir():
            raise MattekitError(f"{flag} {path} is a folder; give a file name.")
        parent = next(p for p in target.parents if p.exists())  # the worker makes the missing folders
        if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
            raise MattekitError(f"{flag} {path} cannot be written: {parent} is not a writable folder.")
        if target.exists() and not os.access(target, os.W_OK):
            raise MattekitError(f"{flag} {path} cannot be written (no permission).")


def run(args: argparse.Namespace) -> int:
    from ..wire import client
    from ..worker.log import WorkerLog

    state_file = args.state_file or client.state_path()
    check_arguments(args, state_file)
    try:
        running = client.find_worker(state_file, timeout=5.0)
    except client.WorkerError as exc:  # a state file it cannot trust
        raise MattekitError(str(exc)) from None
    if running is not None and not args.replace:
        print(
            f"mattekit: a worker already answers at {running.url} (state file {state_file}); "
            f"use --replace to start another.",
            file=sys.stderr,
        )
        return 0
    if running is not None:
        try:
            running.shutdown()
        except client.WorkerError:
            pass
    try:
        log = WorkerLog(args.log_file, capture_std=True) if args.log_file else WorkerLog()
    except OSError as exc:
        raise MattekitError(f"--log-file {args.log_file} cannot be written ({exc.strerror or exc}).") from None
    if not _is_loopback(args.host):
        print(
            f"mattekit: warning: listening on {args.host}, not loopback: anyone who can reach this port and "
            f"learns the token can use the worker.",
            file=sys.stderr,
        )
    worker = _listening(args, state_file, log, replacing=running is not None)
    _stop_on_signals(worker)
    print(
        f"mattekit: worker {worker.url} (address and token in {state_file}); operations: "
        f"{', '.join(sorted(worker.operations))}",
        file=sys.stderr,
        flush=True,
    )
    worker.serve_forever()
    print("mattekit: worker stopped.", file=sys.stderr, flush=True)
    return 0


def _listening(args: argparse.Namespace, state_file, log, replacing: bool):
    """The worker server listening as the flags ask (``replacing``: a worker it stopped may still hold the state
    file's lock, waited for up to a minute); a port it cannot listen on: a MattekitError sentence."""
    from ..worker import service

    try:
        return service.WorkerServer(
            host=args.host,
            port=args.port,
            idle_timeout=args.idle_timeout,
            max_request=int(args.max_request_mb * (1 << 20)),
            max_queued=int(args.max_queued_mb * (1 << 20)),
            state_file=state_file,
            allow_dirs=args.allow_dir,
            threads=args.threads,
            log=log,
            lock_wait=60.0 if replacing else 0.0,
        )
    except OSError as exc:
        raise MattekitError(f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}).") from None


def _stop_on_signals(worker) -> None:
    """SIGTERM, SIGINT and SIGHUP stop ``worker`` (when called on the main thread, the only one that may set them)."""

    def on_signal(signum, _frame):
        worker.stop(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), on_signal)


def main(argv: list[str] | None = None) -> int:
    """``python -m mattekit.commands.serve``: the same command, without loading the other subcommands
    (what the plug-ins' client starts, so that the worker depends on nothing else of the CLI)."""
    parser = argparse.ArgumentParser(prog="mattekit serve")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except MattekitError as exc:
        print(f"mattekit: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
