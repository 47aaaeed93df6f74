"""Domain adaptation with BN on shifted MNIST: the IIT study and the TransNorm study.

**IIT study** (Suzuki et al. 2020, Tables 1-2, Fig. 2, at MNIST scale). A base network
(784-100-100-100-10, BN before each ReLU) is trained on MNIST (the source domain), then
adapted to a shifted MNIST (the target domain, :mod:`minibn.data.shifts`) with a small
labelled target set (``n_adapt`` images):

* baseline: no adaptation;
* vanilla: fine-tuning as usual (BN in training mode normalizes target batches with their
  own statistics, while inference still uses the source running statistics);
* freeze + fine-tuning: BN keeps its inference transform (batchnorm freezing);
* IIT + fine-tuning: the inference-invariant transformation first (Eq. 3-6);
* AdaBN: running statistics := target statistics, no fine-tuning.

Reported: target test error, the train/inference KL mismatch of the first, middle and last
BN layer at the start of adaptation (vanilla vs IIT, Table 2), and the target validation
loss over the first adaptation steps (Fig. 2: vanilla jumps up at the start, IIT not).

**TransNorm study** (the poster's table, at MNIST scale): DANN with BN, with BN + AdaBN
at test time, and with TransNorm, on unlabelled target data; target test accuracy.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import adapt, backend, cli_args, nn, optim
from ..dann import DANN, train_dann
from ..data import BatchIterator, apply_shift, load_mnist
from ..train import evaluate, fit
from . import _parallel, outputs, provenance, stats

METHODS = ("baseline", "vanilla", "freeze", "iit", "adabn")
LABELS = {"baseline": "no adaptation", "vanilla": "vanilla fine-tuning", "freeze": "freezing + fine-tuning",
          "iit": "IIT + fine-tuning", "adabn": "AdaBN"}
DANN_VARIANTS = ("BN", "AdaBN", "TransNorm")
#: every file a run writes into its folder
OUTPUTS = ("adaptation.png", "tables.md", "summary.json", "provenance.json")
COLORS = {"baseline": "tab:gray", "vanilla": "tab:red", "freeze": "tab:green", "iit": "tab:blue", "adabn": "tab:purple"}


@dataclass
class AdaptationConfig:
    shifts: list = field(default_factory=lambda: ["low_contrast", "invert", "noise", "rotate"])
    # invert is left out: DANN (with BN or TransNorm alike) gets below-chance accuracy on it here
    dann_shifts: list = field(default_factory=lambda: ["rotate", "noise", "low_contrast"])
    seeds: list = field(default_factory=lambda: [0, 1, 2, 3, 4])
    base_steps: int = 3000
    batch_size: int = 64
    lr: float = 0.1
    n_adapt: int = 500
    adapt_steps: int = 300
    adapt_lr: float = 0.02
    adapt_batch: int = 32
    curve_steps: int = 50
    dann_steps: int = 3000
    dann_batch: int = 32
    hidden: int = 100

    def validate(self):
        stats.check_runs(self.seeds)
        from ..data import SHIFTS
        bad = [s for s in list(self.shifts) + list(self.dann_shifts) if s not in SHIFTS]
        if bad:
            raise ValueError(f"unknown shifts {bad}; choose from {sorted(SHIFTS)}")
        if self.n_adapt < self.adapt_batch or self.adapt_batch < 2:
            raise ValueError(f"need 2 <= adapt_batch <= n_adapt, got {self.adapt_batch} and {self.n_adapt}")
        if min(self.base_steps, self.adapt_steps, self.dann_steps) < 1 or self.curve_steps > self.adapt_steps:
            raise ValueError("steps must be >= 1 and curve_steps <= adapt_steps")


FAST = dict(shifts=["invert"], dann_shifts=["rotate"], seeds=[0], base_steps=300, adapt_steps=40, curve_steps=10,
            dann_steps=200, n_adapt=128)


def base_net(hidden):
    layers, width = [], 784
    for _ in range(3):
        layers += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def _splits(shift, seed, n_adapt, data_root):
    """Source training data, and the target adaptation, validation and test sets."""
    (x, y), (xt, yt) = load_mnist(root=data_root, progress=False)
    src = (x[:50000], y[:50000])
    adapt_x = apply_shift(shift, x[50000:50000 + n_adapt], seed=seed)
    val = (apply_shift(shift, x[55000:57000], seed=seed + 100), y[55000:57000])
    test = (apply_shift(shift, xt, seed=seed + 200), yt)
    return src, (adapt_x, y[50000:50000 + n_adapt]), val, test


def iit_task(shift, seed, cfg, data_root=None):
    """All five methods for one (shift, seed)."""
    src, (ax, ay), (vx, vy), (tx, ty) = _splits(shift, seed, cfg.n_adapt, data_root)
    A = backend.to_active
    ax_d, ay_d, vx_d, vy_d, tx_d, ty_d = A(ax), A(ay), A(vx), A(vy), A(tx), A(ty)
    backend.seed(seed)
    base = base_net(cfg.hidden)
    opt = optim.SGD(base.parameters(), lr=cfg.lr, momentum=0.9)
    fit(base, nn.SoftmaxCrossEntropy(), opt, BatchIterator(*src, cfg.batch_size, seed=seed), cfg.base_steps,
        progress=False)
    base.eval()
    adapt_batches = [ax_d[i:i + 100] for i in range(0, len(ax_d), 100)]
    loss_fn = nn.SoftmaxCrossEntropy()
    out = {"shift": shift, "seed": seed, "error": {}, "curves": {}, "kl": {}}
    out["source_error"] = 100 * (1 - evaluate(base, A(load_mnist(root=data_root, progress=False)[1][0]),
                                              A(load_mnist(root=data_root, progress=False)[1][1]))["accuracy"])
    out["kl"]["vanilla"] = [r["kl"] for r in adapt.bn_mismatch(base, adapt_batches)]
    for method in METHODS:
        model = copy.deepcopy(base)
        if method == "adabn":
            adapt.adabn(model, adapt_batches)
        if method == "iit":
            adapt.iit(model, adapt_batches)
            out["kl"]["iit"] = [r["kl"] for r in adapt.bn_mismatch(model, adapt_batches)]
        if method == "freeze":
            adapt.freeze(model)
        if method in ("vanilla", "freeze", "iit"):
            out["curves"][method] = _fine_tune(model, ax_d, ay_d, vx_d, vy_d, cfg, seed, loss_fn)
        out["error"][method] = 100 * (1 - evaluate(model.eval(), tx_d, ty_d)["accuracy"])
    return out


def _fine_tune(model, ax, ay, vx, vy, cfg, seed, loss_fn):
    """SGD on the labelled target set; returns the validation loss before each of the first steps."""
    opt = optim.SGD(model.parameters(), lr=cfg.adapt_lr, momentum=0.9)
    batches = BatchIterator(ax, ay, cfg.adapt_batch, seed=seed)
    curve = [evaluate(model, vx, vy, loss_fn)["loss"]]
    model.train()
    for step in range(cfg.adapt_steps):
        x, y = next(batches)
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
        if step < cfg.curve_steps:
            curve.append(evaluate(model, vx, vy, loss_fn)["loss"])
    return curve


def dann_net(norm, hidden):
    def block(i, o):
        return [nn.Linear(i, o, bias=False), (nn.TransNorm1d if norm == "TransNorm" else nn.BatchNorm1d)(o), nn.ReLU()]
    features = nn.Sequential(*block(784, hidden), *block(hidden, hidden))
    return DANN(features, nn.Sequential(nn.Linear(hidden, 10)),
                nn.Sequential(nn.Linear(hidden, 50), nn.ReLU(), nn.Linear(50, 2)))


def dann_task(shift, seed, norm, cfg, data_root=None):
    """DANN with BN (also evaluated after AdaBN) or with TransNorm for one (shift, seed)."""
    (x, y), (xt, yt) = load_mnist(root=data_root, progress=False)
    target_x = apply_shift(shift, x[50000:], seed=seed)
    tx, ty = backend.to_active(apply_shift(shift, xt, seed=seed + 200)), backend.to_active(yt)
    backend.seed(seed)
    dann = dann_net(norm, cfg.hidden)
    train_dann(dann, (x[:50000], y[:50000]), target_x, cfg.dann_steps, cfg.dann_batch, seed=seed)
    res = {"shift": shift, "seed": seed, "accuracy": {}}
    model = dann.model.eval()
    res["accuracy"][norm] = 100 * evaluate(model, tx, ty)["accuracy"]
    if norm == "BN":
        t = backend.to_active(target_x)
        adapt.adabn(model, [t[i:i + 1000] for i in range(0, len(t), 1000)])
        res["accuracy"]["AdaBN"] = 100 * evaluate(model, tx, ty)["accuracy"]
    return res


def _mean_std(values):
    return float(np.mean(values)), float(np.std(values))


def tables(iit_rows, dann_rows, cfg):
    several = stats.several(cfg.seeds)
    lines = [f"Target test error (%), {stats.what_the_cells_are(cfg.seeds)}; {cfg.n_adapt} labelled target "
             f"images, {cfg.adapt_steps} fine-tuning steps.", "",
             "| method | " + " | ".join(cfg.shifts) + " |", "| --- | " + " | ".join("---:" for _ in cfg.shifts) + " |"]
    summary = {"error": {}, "kl": {}, "dann": {}}
    for m in METHODS:
        cells = []
        for s in cfg.shifts:
            st = stats.summarize([r["error"][m] for r in iit_rows if r["shift"] == s])
            summary["error"].setdefault(m, {})[s] = st
            cells.append(stats.cell(st, mark_single=several))
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    src = _mean_std([r["source_error"] for r in iit_rows])
    src_text = f"{src[0]:.2f} +- {src[1]:.2f}% (mean +- std over seeds)" if several else f"{src[0]:.2f}%"
    lines += ["", f"(The base networks' error on the source test set: {src_text}.)", "",
              "KL divergence between training-mode and inference-mode BN outputs on the target adaptation data at "
              f"the start of adaptation ({'mean over seeds' if several else f'seed {cfg.seeds[0]}'}):", "",
              "| shift | layer | vanilla | after IIT |", "| --- | --- | ---: | ---: |"]
    for s in cfg.shifts:
        rows = [r for r in iit_rows if r["shift"] == s]
        for i, name in enumerate(["first", "middle", "last"]):
            v = float(np.mean([r["kl"]["vanilla"][i] for r in rows]))
            w = float(np.mean([r["kl"]["iit"][i] for r in rows]))
            summary["kl"].setdefault(s, {})[name] = {"vanilla": v, "iit": w}
            lines.append(f"| {s} | {name} | {v:.3g} | {w:.1e} |")
    if dann_rows:
        lines += ["", f"DANN, unlabelled target, target test accuracy (%), {stats.what_the_cells_are(cfg.seeds)}:",
                  "",
                  "| normalization | " + " | ".join(cfg.dann_shifts) + " |",
                  "| --- | " + " | ".join("---:" for _ in cfg.dann_shifts) + " |"]
        for v in DANN_VARIANTS:
            cells = []
            for s in cfg.dann_shifts:
                vals = [r["accuracy"][v] for r in dann_rows if r["shift"] == s and v in r["accuracy"]]
                st = stats.summarize(vals)
                summary["dann"].setdefault(v, {})[s] = st
                cells.append(stats.cell(st, mark_single=several) if vals else "-")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += _verdicts(summary, cfg)
    return "\n".join(lines), summary


def _verdicts(summary, cfg):
    """For each shift, the best method and whether it beats the others beyond the noise (nothing
    of the kind for one seed: without an interval there is no telling a finding from seed noise)."""
    if not stats.several(cfg.seeds):
        return ["", "One seed: no interval, so no verdict on which method is best for a shift (a difference "
                "between two runs may be seed noise). Run several seeds for that."]
    out = ["", "Best per shift, and whether beyond the noise (separated 95% intervals):", ""]
    for table, goal, shifts, what in ((summary["error"], min, cfg.shifts, "error"),
                                     (summary["dann"], max, cfg.dann_shifts, "DANN accuracy")):
        for s in shifts:
            have = {m: t[s] for m, t in table.items() if s in t and t[s]["n"]}
            if not have:
                continue
            best = goal(have, key=lambda m: have[m]["mean"])
            beaten = [m for m in have if m != best and stats.separated(have[best], have[m])]
            within = [m for m in have if m != best and m not in beaten]
            name = LABELS.get if what == "error" else (lambda m: m)
            beaten, within = ", ".join(map(name, beaten)) or "none", ", ".join(map(name, within)) or "none"
            out.append(f"- {what}, {s}: best {name(best)}; beyond the noise over {beaten}; within it: {within}.")
    return out


def plot(iit_rows, cfg):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = stats.several(cfg.seeds)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2))
    ax = axes[0]
    colors = COLORS
    shift = cfg.shifts[0]
    for m in ("vanilla", "freeze", "iit"):
        curves = np.array([r["curves"][m] for r in iit_rows if r["shift"] == shift])
        mean, sd = curves.mean(0), curves.std(0)
        steps = np.arange(len(mean))
        ax.plot(steps, mean, color=colors[m], label=LABELS[m])
        ax.fill_between(steps, mean - sd, mean + sd, color=colors[m], alpha=0.15)
    ax.set(title=f"(a) Target validation loss, first adaptation steps ({shift})", xlabel="adaptation step",
           ylabel="negative log likelihood")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[1]
    width = 0.8 / len(METHODS)
    for j, m in enumerate(METHODS):
        sts = [stats.summarize([r["error"][m] for r in iit_rows if r["shift"] == s]) for s in cfg.shifts]
        means = [st["mean"] for st in sts]
        half = np.nan_to_num([st["ci95"][1] - st["mean"] for st in sts]) if several else None  # one seed: no bar
        ax.bar(np.arange(len(cfg.shifts)) + (j - 2) * width, means, width, yerr=half, capsize=2, label=LABELS[m],
               color=COLORS[m])
    ax.set_xticks(np.arange(len(cfg.shifts)), cfg.shifts)
    # a linear axis from zero: bars on a log axis have no baseline, so their lengths mislead
    ax.set_ylim(0, None)
    what = f"mean, 95% interval over {len(set(cfg.seeds))} seeds" if several else "one seed, no interval"
    ax.set(title=f"(b) Target test error after adaptation ({what})", ylabel="test error (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(cfg: AdaptationConfig = None, out="results/adaptation", data_root=None, jobs=None, progress=True):
    cfg = cfg or AdaptationConfig()
    cfg.validate()
    cli_args.check_out_dir(out)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    load_mnist(root=data_root)
    iit_tasks = [(s, seed, cfg, data_root) for s in cfg.shifts for seed in cfg.seeds]
    dann_tasks = [(s, seed, norm, cfg, data_root) for s in cfg.dann_shifts for seed in cfg.seeds
                  for norm in ("BN", "TransNorm")]
    jobs = _parallel.default_jobs(len(iit_tasks) + len(dann_tasks)) if jobs is None else jobs
    t0 = time.perf_counter()
    iit_rows, interrupted = _parallel.run_with_progress(iit_task, iit_tasks, jobs, "IIT study", progress)
    dann_rows = []
    if not interrupted:
        dann_rows, interrupted = _parallel.run_with_progress(dann_task, dann_tasks, jobs, "TransNorm study", progress)
    wall = time.perf_counter() - t0
    out = Path(out)
    # DANN rows for the same (shift, seed) from the BN and TransNorm runs go together
    merged = {}
    for r in dann_rows:
        merged.setdefault((r["shift"], r["seed"]), {"shift": r["shift"], "seed": r["seed"], "accuracy": {}})
        merged[(r["shift"], r["seed"])]["accuracy"].update(r["accuracy"])
    dann_rows = list(merged.values())
    complete = iit_rows
    text, summary = tables(complete, dann_rows, cfg) if complete else ("(no run finished)", {})
    text += f"\n\nTotal wall time {wall:.0f} s."
    summary.update({"config": asdict(cfg), "backend": backend.active(), "jobs": jobs, "versions": provenance.versions(),
                    "interrupted": interrupted, "wall_seconds": round(wall, 1), "runs": iit_rows,
                    "dann_runs": dann_rows})
    files = {"adaptation.png": outputs.figure_bytes(plot(complete, cfg))} if complete else {}
    files["tables.md"] = (text + "\n").encode()
    files["summary.json"] = outputs.json_bytes(summary)
    files["provenance.json"] = outputs.json_bytes(provenance.record("adaptation", wall, asdict(cfg)))
    outputs.write_all(out, files, OUTPUTS)
    if interrupted:
        raise KeyboardInterrupt
    return summary, text


def add_cli(reproduce_sub):
    d = AdaptationConfig()
    p = reproduce_sub.add_parser("adaptation", help="AdaBN, IIT, freezing and TransNorm on shifted MNIST",
                                 description=cli_args.summary(__doc__) + "Trains on MNIST, adapts to shifted "
                                 "MNIST (AdaBN, IIT, BN freezing, fine-tuning; DANN with BN and TransNorm) and "
                                 "writes tables.md, adaptation.png, summary.json and provenance.json to --out; "
                                 "takes about 2 minutes on 2 cores (--fast: about a minute).",
                                 formatter_class=cli_args.HelpFormatter)
    p.add_argument("--fast", action="store_true", help=f"a quick check: {FAST}")
    p.add_argument("--seeds", type=cli_args.nonnegative_int, nargs="+", default=None,
                   help=f"seeds of the runs (default: {d.seeds})%(default).0s")
    p.add_argument("--shifts", nargs="+", default=None,
                   help=f"target shifts of the IIT study (default: {d.shifts})%(default).0s")
    p.add_argument("--dann-shifts", nargs="+", default=None,
                   help=f"target shifts of the TransNorm study (default: {d.dann_shifts})%(default).0s")
    cli_args.add_common_options(p, "results/adaptation")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    cfg = AdaptationConfig(**FAST) if args.fast else AdaptationConfig()
    for name in ('seeds', 'shifts', 'dann_shifts'):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    return cli_args.run_cli("adaptation", cfg, args, run, ", ".join(OUTPUTS))
