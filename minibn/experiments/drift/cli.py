"""`minibn drift`: its options, and what it prints."""

from __future__ import annotations

import sys

from ... import backend, distributed
from ...cli_args import HelpFormatter, nonnegative_int, positive_float, positive_int
from ..fig1_net import NORMS
from .config import NETS, DriftConfig, label
from .runner import run

#: the first line of `minibn drift --help`
DESCRIPTION = "Fig. 1 of Ioffe & Szegedy (2015), Sec. 4.1: activation drift in an MNIST MLP, with and without BN."


def _cmd(args) -> int:
    if args.backend:
        backend.use(args.backend)
    nets = {"both": NETS, "bn": ("bn",), "no-bn": ("baseline",)}[args.nets]
    cfg = DriftConfig(steps=args.steps, batch_size=args.batch_size, eval_every=args.eval_every, seed=args.seed,
                      lr=args.lr, init_std=args.init_std, unit=args.unit, norm=args.norm)
    if args.distributed:  # validated once the ranks agree on cfg (_run_distributed)
        return _cmd_distributed(args, cfg, nets)
    cfg.validate(nets)  # a ValueError is one line and exit 2 (minibn.cli)
    try:
        summary = run(cfg, args.out, nets, data_root=args.data, progress=not args.quiet, jobs=args.jobs)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the outputs so far (both nets, up to the interrupt) are in {args.out}/",
              file=sys.stderr)
        return 130
    print_summary(summary, cfg, args.out)
    return 0


def _cmd_distributed(args, cfg, nets):
    comm = distributed.world(timeout=distributed.RUN_TIMEOUT)  # no collective waits for ever
    summary = run(cfg, args.out, nets, data_root=args.data, progress=not args.quiet, comm=comm)
    if summary is not None:
        print(f"data-parallel over {comm.size} rank(s), {cfg.batch_size // comm.size}-"
              f"{-(-cfg.batch_size // comm.size)} rows each, BN synchronized")
        print_summary(summary, cfg, args.out)
    return 0


def print_summary(summary, cfg, out):
    """What the command prints after a run: each net's accuracy, speed and drift, and where the files are."""
    for name, s in summary["nets"].items():
        print(f"{label(name, cfg.norm):>10}: final test accuracy {s['final_test_accuracy']:.4f}, "
              f"{s['steps_per_second']:.0f} steps/s; median of the sigmoid input after the first 10% of "
              f"training: net trend {s['p50_trend_after_10pct']:+.2f}, range {s['p50_range_in_spreads']:.2f} "
              f"of the 15-85 spread")
    print("steps/s: training steps only, timed after a warm-up step that compiles the kernels, "
          "evaluations not counted")
    print(f"total wall time {summary['wall_seconds_total']:.1f} s; outputs in {out}/ "
          f"(fig1.png, curves.csv, summary.json: these figures, machine-readable, and provenance.json: "
          f"the commit, versions and machine)")


def add_cli(sub):
    d = DriftConfig()
    p = sub.add_parser("drift", help="reproduce Fig. 1 of the BN paper (MNIST activation drift)",
                       description=DESCRIPTION + " Trains the 784-100-100-100-10 sigmoid MLP "
                       "without and with BN and writes fig1.png, curves.csv, summary.json and provenance.json "
                       "to --out; the default 50,000 steps per net take about a minute on 2 cores.",
                       formatter_class=HelpFormatter)
    p.add_argument("--steps", type=positive_int, default=d.steps, help="SGD steps per net")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="mini-batch size")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="evaluate every this many steps (default: 1,000, or steps / 50 on a shorter run)%(default).0s")
    p.add_argument("--seed", type=nonnegative_int, default=d.seed, help="seed of the weights and of the batch order")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="SGD learning rate (plain SGD)")
    p.add_argument("--init-std", type=positive_float, default=d.init_std, help="std of the Gaussian initial weights")
    p.add_argument("--unit", type=nonnegative_int, default=d.unit,
                   help="which sigmoid of the last hidden layer to record")
    p.add_argument("--norm", choices=sorted(NORMS), default=d.norm,
                   help="the normalization layer of the normalized net (the paper's is batchnorm)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend (default: the active one)%(default).0s")
    p.add_argument("--out", default="results/drift", help="the folder for fig1.png, curves.csv, summary.json and "
                   "provenance.json")
    p.add_argument("--data", default=None,
                   help="data directory holding mnist/ (default: $MINIBN_DATA or the cache)%(default).0s")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bn", dest="nets", action="store_const", const="bn", help="train only the BN net")
    g.add_argument("--no-bn", dest="nets", action="store_const", const="no-bn", help="train only the plain net")
    p.set_defaults(nets="both")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="train the nets in this many processes "
                        "(default: 2 on the CPU with >= 2 cores, else 1)%(default).0s")
    p.add_argument("--distributed", action="store_true",
                   help="under mpiexec: train each net data-parallel over the ranks, each taking its rows "
                        "of every batch, with synchronized BN (needs mpi4py: pip install \"minibn[mpi]\")")
    p.set_defaults(func=_cmd)
