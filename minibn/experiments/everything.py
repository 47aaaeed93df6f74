"""`minibn reproduce all`: every committed figure and table, each with its provenance record.

Runs, one after the other, the Fig. 1 reproduction (``drift/``), the small-batch study
(``small_batch/``), the adaptation studies (``adaptation/``) and the learning-rate sweep of
Fig. 1 (``lr_sweep/``) into one folder, each writing its figure, its table and its
``provenance.json``; then a ``provenance.json`` for the whole with each part's wall time.
``minibn reproduce all --out docs/figures`` regenerates the figures and tables of the README and
the site's reproductions page (docs/reproductions.md).
"""

from __future__ import annotations

import time

from .. import cli_args
from .._files import new_folder, write_files
from . import adaptation, drift, lr_sweep, outputs, provenance, small_batch

#: what `all` writes: each experiment's folder and the record of the whole
OUTPUTS = ("drift", "small_batch", "adaptation", "lr_sweep", "provenance.json")


def run(out="results/reproduce", fast=False, data_root=None, jobs=None, progress=True, seeds=None):
    """Run every experiment (``fast``: their quick checks) into ``out``; returns the record.

    Every setting is checked before the first experiment starts (bad seeds must not surface
    after minutes of training), and the whole is built in a new folder that replaces ``out``
    when it is done, or on Ctrl-C with the experiments done so far
    (:func:`minibn._files.new_folder`)."""
    cli_args.check_out_dir(out)
    sb = small_batch.SmallBatchConfig(**small_batch.FAST) if fast else small_batch.SmallBatchConfig()
    ad = adaptation.AdaptationConfig(**adaptation.FAST) if fast else adaptation.AdaptationConfig()
    if seeds is not None:
        sb.seeds = ad.seeds = list(seeds)
    sb.validate()
    ad.validate()
    steps = 300 if fast else 50_000
    walls, t0 = {}, time.perf_counter()
    with new_folder(out, OUTPUTS) as folder:
        parts = {
            "drift": lambda: drift.run(drift.DriftConfig(steps=steps), folder / "drift", data_root=data_root,
                                       progress=progress, jobs=jobs),
            "small_batch": lambda: small_batch.run(sb, folder / "small_batch", data_root, jobs, progress),
            "adaptation": lambda: adaptation.run(ad, folder / "adaptation", data_root, jobs, progress),
            "lr_sweep": lambda: lr_sweep.run(steps=steps, out=folder / "lr_sweep", data_root=data_root, jobs=jobs,
                                             progress=progress),
        }
        for name, part in parts.items():
            start = time.perf_counter()
            part()
            walls[name] = round(time.perf_counter() - start, 1)
        record = provenance.record("all", time.perf_counter() - t0, {"fast": fast, "wall_seconds_by_part": walls,
                                                                     "seeds": sb.seeds})
        write_files(folder, {"provenance.json": outputs.json_bytes(record)})
    return record


def add_cli(reproduce_sub):
    p = reproduce_sub.add_parser("all", help="every experiment: the published figures and tables, with provenance",
                                 description="Run drift, small-batch, adaptation and lr-sweep one after the "
                                 "other, each into its own subfolder of --out (with its figure, table and "
                                 "provenance.json), then a provenance.json for the whole. Takes about 8 minutes "
                                 "on 2 cores (--fast: a few minutes). In a clone of the repository, "
                                 "`--out docs/figures` regenerates the figures of the README and "
                                 "docs/reproductions.md.",
                                 formatter_class=cli_args.HelpFormatter)
    p.add_argument("--fast", action="store_true", help="the quick check of each experiment")
    p.add_argument("--seeds", type=cli_args.nonnegative_int, nargs="+", default=None,
                   help="seeds of the small-batch and adaptation runs (default: 5 seeds)%(default).0s")
    cli_args.add_common_options(p, "results/reproduce")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    try:
        record = run(args.out, args.fast, args.data, args.jobs, progress=not args.quiet, seeds=args.seeds)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the experiments finished so far are in {args.out}")
        return 130
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in record["config"]["wall_seconds_by_part"].items())
    print(f"all experiments in {record['wall_seconds']:.0f} s ({parts}); outputs and provenance in {args.out}/")
    return 0
