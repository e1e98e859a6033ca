"""Conventions shared by the command-line tools (``python -m builder.generate`` ... ``python -m weightzoo.baselines``).

Exit codes: 0 success, 1 a failed check or an unexpected error (traceback printed), 2 a :class:`WeightZooError`
(``error: <message>`` on standard error) or a usage error (argparse). ``builder.push`` also returns 1 for
network and token errors.

Exit: :func:`run_main` runs a tool's ``main`` and ends the process with :func:`os._exit` once Python-level clean-up
is done, so the interpreter's teardown never runs. That teardown is where C++ libraries loaded in-process (torch's
intra-op and inter-op pools, pyarrow's CPU and I/O pools) destroy their static thread-pool objects while their
worker threads may still be live; on a busy machine that race can call ``std::terminate`` ("terminate called
without an active exception", SIGABRT, exit code 134) after ``main`` has already returned its code.

Example (the ``__main__`` block of a tool; tests call ``main([...])`` directly)::

    if __name__ == "__main__":
        run_main(main)
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import contextvars
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from weightzoo.errors import WeightZooError, did_you_mean

#: A usage or data error the package reports as ``error: <message>``.
ERROR_EXIT = 2


def exit_code(main: Callable[[Any], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` and return the process exit code Python would give it (without exiting).

    ``SystemExit`` (argparse's ``--help`` and usage errors, ``sys.exit``) gives its code as the interpreter would;
    a :class:`WeightZooError` that escapes ``main`` is reported as ``error: <message>`` with code 2 (see
    :func:`command`); any other exception prints its traceback and gives 1.
    """
    try:
        return command(main)(argv)
    except SystemExit as exc:
        return _code(exc.code)
    except Exception:
        traceback.print_exc()
        return 1


def command(main: Callable[[Any], int | None]) -> Callable[[Any], int]:
    """A tool's ``main`` that reports its own errors: the one place a :class:`WeightZooError` becomes
    ``error: <message>`` and exit code 2, and an interruption that says what it kept (a ``KeyboardInterrupt``
    subclass with a message, such as ``builder.generate.GenerationInterrupted``) its message and 130. A plain
    Ctrl-C still propagates. Tests call the wrapped ``main([...])`` and get the code the process would exit with.

    Example:
        >>> @command
        ... def main(argv=None):
        ...     raise WeightZooError("no zoo at 'x'")
        >>> main([])
        2
    """

    @functools.wraps(main)
    def reported(argv: Any = None) -> int:
        try:
            return _code(main(argv))
        except WeightZooError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ERROR_EXIT
        except KeyboardInterrupt as exc:
            if type(exc) is KeyboardInterrupt:
                raise
            print(exc, file=sys.stderr)
            return 128 + signal.SIGINT

    return reported


def add_progress_flags(parser: argparse.ArgumentParser, what: str = "progress bars") -> None:
    """``--quiet`` (no bars) and ``--progress`` (bars even in a log or a pipe), the same in every tool; the
    default shows bars when standard error is a terminal. :func:`progress_of` reads them.

    Example:
        >>> p = ArgumentParser(prog="tool")
        >>> add_progress_flags(p)
        >>> progress_of(p.parse_args(["--quiet"])), progress_of(p.parse_args([]))
        (False, None)
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help=f"no {what}")
    group.add_argument(
        "--progress", action="store_true", help=f"{what} even when standard error is not a terminal (a log, a pipe)"
    )


def progress_of(args: argparse.Namespace) -> bool | None:
    """What :func:`add_progress_flags` parsed: False (``--quiet``), True (``--progress``) or None (bars on a
    terminal), as :func:`weightzoo.progress.bar` takes it."""
    return False if args.quiet else True if args.progress else None


def _code(value: object) -> int:
    """The exit status of ``sys.exit(value)``: None 0, an int itself, anything else printed and 1."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0xFF
    if isinstance(value, bool):
        return int(value)
    print(value, file=sys.stderr)
    return 1


def run_main(main: Callable[[Any], int | None], argv: list[str] | None = None) -> NoReturn:
    """Run a command-line ``main`` and end the process with its exit code, whatever C++ teardown would do.

    Runs ``main(argv)`` (see :func:`exit_code` for how exceptions map to codes), then does the clean-up the
    interpreter would: waits for non-daemon threads and shuts down ``concurrent.futures`` pools, runs the
    ``atexit`` handlers (``logging.shutdown``, ``multiprocessing``'s child clean-up, tqdm's monitor, ``ray``'s
    shutdown, ...) and flushes standard output and error; then calls :func:`os._exit`, skipping module teardown
    and C++ static destructors. A ``KeyboardInterrupt`` still ends the process by SIGINT, as plain Python does.
    """
    interrupted = False
    try:
        code = exit_code(main, argv)
    except KeyboardInterrupt:
        traceback.print_exc()
        code, interrupted = 128 + signal.SIGINT, True
    code = finish(code)
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def finish(code: int) -> int:
    """Python's own exit-time clean-up short of interpreter teardown; returns ``code`` (1 if flushing failed)."""
    for step in (_shutdown_threads, atexit._run_exitfuncs):
        try:
            step()
        except Exception:
            traceback.print_exc()
            code = code or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a closed pipe (e.g. `| head`): Python exits with 120 when it cannot flush stdout
            code = code or 120
    return code


def _shutdown_threads() -> None:
    """What ``Py_Finalize`` does first: run ``threading``'s exit hooks and join non-daemon threads."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line on standard error (``<prog>: error: <message>; see <prog>
    --help``) and exit code 2, as every error of the package: no usage block, no traceback. Every tool builds its
    parser with it; numeric options take their ``type=`` from :func:`weightzoo.options.option_type`.

    Example:
        >>> from weightzoo.options import option_type
        >>> p = ArgumentParser(prog="tool")
        >>> _ = p.add_argument("--threads", type=option_type("threads"))
        >>> p.parse_args(["--threads", "2"]).threads
        2
    """

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        message += _suggestion(message, self)
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _suggestion(message: str, parser: argparse.ArgumentParser) -> str:
    """A did-you-mean for argparse's two name errors: an invalid choice (against the choices it lists) and an
    unrecognized option (against the parser's options)."""
    import re

    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        return did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", "))
    unknown = re.match(r"unrecognized arguments: (\S+)", message)
    if unknown:
        options = [o for action in parser._actions for o in action.option_strings]
        return did_you_mean(unknown.group(1).split("=")[0], options)
    return ""


#: ``weightzoo <command>`` while the ``weightzoo`` command runs a tool (:func:`invoked_as`), else unset.
_INVOKED_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar("weightzoo_invoked_as", default=None)


@contextlib.contextmanager
def invoked_as(name: str) -> Iterator[None]:
    """Within the block, tools name themselves ``name`` in usage and errors (:func:`prog`); the ``weightzoo``
    command runs a subcommand this way.

    Example:
        >>> with invoked_as("weightzoo generate"):
        ...     prog("builder.generate")
        'weightzoo generate'
    """
    token = _INVOKED_AS.set(name)
    try:
        yield
    finally:
        _INVOKED_AS.reset(token)


def prog(module: str) -> str:
    """The program name a tool's usage and errors show: ``weightzoo <command>`` when run through the ``weightzoo``
    command, ``python -m <module>`` otherwise.

    Example:
        >>> prog("builder.generate")
        'python -m builder.generate'
    """
    return _INVOKED_AS.get() or f"python -m {module}"
