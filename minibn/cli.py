"""The `minibn` command (also `python -m minibn`): `minibn gradcheck`, `minibn drift`, ...

Errors a user can fix (no MNIST, a bad option, no GPU for --backend cupy, a file in the
way) are one line on stderr and exit status 2; ``--debug`` shows the traceback instead.
Ctrl-C exits with 130 after the command has written what it had.
"""

from __future__ import annotations

import argparse
import sys


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default. (An option whose default is computed says it in
    its own help, which ends with ``%(default).0s``: an empty field that keeps argparse from
    adding "(default: None)".)"""


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
    print(f"{layers} layers in {cases} cases, {len(results)} tensors checked: {len(results) - failed} passed, "
          f"{failed} failed")
    return 1 if failed else 0


def _cmd_bench(args) -> int:
    from .bench import run
    from .experiments._io import check_out_dir

    check_out_dir(args.out)
    text = run(args.out, fast=args.fast, progress=not args.quiet)
    print(text)
    print(f"outputs in {args.out}/ (cpu.md, cpu.png)")
    return 0


def build_parser():
    from .experiments._io import nonnegative_int

    parser = argparse.ArgumentParser(prog="minibn", description="minibn: batch normalization from scratch",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gradcheck", help="gradient-check every layer (float64, random dy)",
                       formatter_class=HelpFormatter)
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="the array backend (default: the active one)%(default).0s")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the inputs and of dy")
    p.set_defaults(func=_cmd_gradcheck)

    from .experiments.drift import add_cli as add_drift
    add_drift(sub)

    p = sub.add_parser("bench", help="benchmark minibn against PyTorch (and CuPy/CUDA where present)",
                       formatter_class=HelpFormatter)
    p.add_argument("--out", default="results/bench", help="where to write cpu.md and cpu.png")
    p.add_argument("--fast", action="store_true", help="two small shapes only (a quick check)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_bench)

    rep = sub.add_parser("reproduce", help="reproduce a paper's experiment (see `minibn reproduce -h`)")
    rep_sub = rep.add_subparsers(dest="experiment", required=True)
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


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .data.mnist import DataError

    parser = build_parser()
    args = parser.parse_args(argv)
    where = " ".join(filter(None, ["minibn", args.command, getattr(args, "experiment", None)]))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except (DataError, CheckpointError, ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        if args.debug:
            raise
        print(f"{where}: error: {e} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
