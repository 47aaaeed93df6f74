"""The `minibn` command: `minibn gradcheck`, `minibn drift`, ..."""

from __future__ import annotations

import argparse
import sys


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

    print(run(args.out, fast=args.fast))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="minibn", description="minibn: batch normalization from scratch")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gradcheck", help="gradient-check every layer (float64, random dy)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_gradcheck)

    try:
        from .experiments.drift import add_cli as add_drift
        add_drift(sub)
    except ImportError:  # pragma: no cover - the drift experiment arrives with its issue
        pass

    p = sub.add_parser("bench", help="benchmark minibn against PyTorch (and CuPy/CUDA where present)")
    p.add_argument("--out", default="docs/benchmarks", help="where to write cpu.md and cpu.png")
    p.add_argument("--fast", action="store_true", help="two small shapes only (a quick check)")
    p.set_defaults(func=_cmd_bench)

    rep = sub.add_parser("reproduce", help="reproduce a paper's experiment (see `minibn reproduce -h`)")
    rep_sub = rep.add_subparsers(dest="experiment", required=True)
    from .experiments.small_batch import add_cli as add_small_batch
    add_small_batch(rep_sub)
    from .experiments.adaptation import add_cli as add_adaptation
    add_adaptation(rep_sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
