"""The `minibn` command (also `python -m minibn`): `minibn gradcheck`, `minibn drift`, ...

Errors a user can fix (no MNIST, a bad option, no GPU for --backend cupy, a file in the
way) are one line on stderr and exit status 2; ``--debug`` shows the traceback instead.
An output folder that cannot be written is such an error before any training starts.
Ctrl-C exits with 130 after the command has written what it had. SIGTERM (what ``kill``,
``timeout`` and a batch scheduler send) is handled as Ctrl-C is, and the command then exits
with 143 (128 + 15, the status of a process ended by SIGTERM): a job script can tell a run
stopped from outside from one a user interrupted, and either way the outputs are written.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .cli_args import HelpFormatter, check_out_dir, nonnegative_int


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2, like every
    other error of the command. argparse's own error() prints the whole usage block first,
    which buries the one line that says what is wrong; --help still shows the usage."""

    def error(self, message):
        self.exit(2, usage_error(self.prog, message))


def usage_error(prog, message):
    """The line a bad command line gets: what is wrong, and where the options are listed."""
    return f"{prog}: error: {message} ({prog} --help lists the options)\n"


def _cmd_gradcheck(args) -> int:
    from . import backend
    from .gradcheck import gradcheck_all

    if args.backend:
        backend.use(args.backend)
    checked = gradcheck_all(seed=args.seed)
    results = [(case.name, row) for case, row in checked]
    width = max(len(name) for name, _ in results)
    twidth = max(len(r["tensor"]) for _, r in results)
    print(f"gradcheck on backend {backend.active()}: float64, central differences, random dy "
          f"(layer, input shape, implementation, variant)")
    print(f"{'case':<{width}}  {'tensor':<{twidth}}  {'max rel error':>13}  result")
    failed = 0
    for name, r in results:
        ok = "pass" if r["passed"] else "FAIL"
        failed += not r["passed"]
        print(f"{name:<{width}}  {r['tensor']:<{twidth}}  {r['max_rel_error']:>13.2e}  {ok}")
    layers, cases = len({case.layer for case, _ in checked}), len({name for name, _ in results})
    from . import testing
    for spec in testing.SPECS:
        if not spec.is_installed():
            print(f"not checked here: {spec.name}, which needs {spec.needs or 'an optional package'}")
    print(f"{layers} layers in {cases} cases, {len(results)} tensors checked: {len(results) - failed} passed, "
          f"{failed} failed")
    return 1 if failed else 0


def _cmd_bench(args) -> int:
    from .bench import run

    text = run(args.out, fast=args.fast, progress=not args.quiet)
    print(text)
    # the folder holds this run's files only (no cpu.png without PyTorch): name what is there
    written = [name for name in ("cpu.md", "cpu.png") if os.path.exists(os.path.join(args.out, name))]
    print(f"outputs in {args.out}/ ({', '.join(written)})")
    return 0


def build_parser():
    parser = Parser(prog="minibn", description="minibn: batch normalization from scratch, in NumPy. "
                                               "`minibn COMMAND --help` says what a command does, what it "
                                               "writes and how long it takes.",
                    formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"minibn {__version__}")
    # parser_class: the subcommands' parsers (and theirs) report errors in one line too
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    p = sub.add_parser("gradcheck", help="gradient-check every layer (float64, random dy)",
                       description="Compare every layer's hand-written backward with central finite "
                                   "differences (float64, a random upstream gradient dy) and print one row "
                                   "per checked tensor; exit status 1 if any fails. Writes no files; takes "
                                   "about half a minute on 2 cores.",
                       formatter_class=HelpFormatter)
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="the array backend (default: the active one)%(default).0s")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the inputs and of dy")
    p.set_defaults(func=_cmd_gradcheck)

    from .experiments.drift import add_cli as add_drift
    add_drift(sub)

    p = sub.add_parser("bench", help="benchmark minibn against PyTorch and JAX (and CuPy/CUDA where present)",
                       description="Time minibn's BN layers against PyTorch on the CPU (and CuPy against PyTorch "
                                   "CUDA where a GPU is present), next to the machine's copy bandwidth, and "
                                   "training steps against PyTorch and JAX's jit, each framework in a process of "
                                   "its own (those installed: pip install 'minibn[bench]'). Writes cpu.md (the "
                                   "tables) and cpu.png to --out; takes about 4 minutes (--fast: about 40 s).",
                       formatter_class=HelpFormatter)
    p.add_argument("--out", default="results/bench", help="where to write cpu.md and cpu.png")
    p.add_argument("--fast", action="store_true", help="two small shapes only (a quick check)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_bench)

    rep = sub.add_parser("reproduce", help="reproduce a paper's experiment (see `minibn reproduce -h`)",
                         description="Reproduce the papers' experiments at MNIST scale: each writes its figure, "
                                     "its table, summary.json and provenance.json to its --out folder. "
                                     "`minibn reproduce EXPERIMENT --help` says what one does and how long it "
                                     "takes; --fast runs a quick check of it.")
    rep_sub = rep.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True, parser_class=Parser)
    from .experiments.small_batch import add_cli as add_small_batch
    add_small_batch(rep_sub)
    from .experiments.adaptation import add_cli as add_adaptation
    add_adaptation(rep_sub)
    from .experiments.lr_sweep import add_cli as add_lr_sweep
    add_lr_sweep(rep_sub)
    from .experiments.sync_bn import add_cli as add_sync_bn
    add_sync_bn(rep_sub)
    from .experiments.everything import add_cli as add_all
    add_all(rep_sub)
    from .notebooks import add_cli as add_course
    add_course(sub)
    return parser


#: set by the SIGTERM handler: the interrupt is a termination (exit status 143, not 130)
_terminated = False


def _terminate_as_interrupt(signum, frame):
    """SIGTERM's default is to end the process at once: nothing written, and the worker
    processes left behind. Raised as KeyboardInterrupt instead, it takes Ctrl-C's way: the
    training loop stops, the outputs so far are written, the workers are stopped too
    (:mod:`minibn.experiments._parallel`)."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _interrupted_status():
    return 128 + signal.SIGTERM if _terminated else 130


def main(argv=None) -> int:
    global _terminated
    _terminated = False
    # main() is also called in a thread or an interpreter that owns SIGTERM (a test runner):
    # the handler is installed only in the main thread, and the previous one restored after
    installed = threading.current_thread() is threading.main_thread()
    if installed:
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        status = _main(argv)
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    # the commands return 130 on an interrupt; a SIGTERM's is 143
    return _interrupted_status() if status == 130 else status


def _main(argv):
    from .checkpoint import CheckpointError
    from .data.mnist import DataError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    where = " ".join(filter(None, ["minibn", args.command, getattr(args, "experiment", None),
                                   getattr(args, "action", None)]))
    if unknown:  # reported here, not by parse_args: its line would name `minibn`, not the subcommand
        parser.exit(2, usage_error(where, f"unrecognized arguments: {' '.join(unknown)}"))
    try:
        # the folder a subcommand writes to (--out; DEST of `minibn course`), checked before any
        # work: a run must not train for minutes and then find it cannot save what it did
        out = getattr(args, "out", None) or getattr(args, "dest", None)
        if out is not None:
            check_out_dir(out)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{where}: {'terminated (SIGTERM)' if _terminated else 'interrupted'}", file=sys.stderr)
        return 130
    except (DataError, CheckpointError, ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        if args.debug:
            raise
        print(f"{where}: error: {e} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
