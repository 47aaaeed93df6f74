"""`minibn reproduce adaptation`: the fast mode writes its outputs; the DANN step is hand-wired right."""

import json
import os

import numpy as np

from minibn import nn
from minibn.cli import main
from minibn.dann import DANN, grl_schedule
from minibn.gradcheck import numerical_gradient


def test_fast_mode_writes_tables_figure_and_json(tmp_path, mnist_dir, capsys):
    out = tmp_path / "ad"
    assert main(["reproduce", "adaptation", "--fast", "--out", str(out), "--quiet"]) == 0
    assert {"tables.md", "adaptation.png", "summary.json"} <= set(os.listdir(out))
    s = json.loads((out / "summary.json").read_text())
    assert set(s["error"]) == {"baseline", "vanilla", "freeze", "iit", "adabn"}
    assert set(s["dann"]) == {"BN", "AdaBN", "TransNorm"}
    kl = s["kl"]["invert"]
    assert all(kl[layer]["iit"] < kl[layer]["vanilla"] for layer in ("first", "middle", "last"))
    assert "IIT + fine-tuning" in capsys.readouterr().out


def test_dann_feature_gradient_is_the_sum_of_both_branches(rng):
    """The hand-wired gradient w.r.t. the features equals -scale * d(domain loss) + d(label loss on source rows)."""
    feats = nn.Sequential(nn.Linear(4, 3)).astype(np.float64)
    clf = nn.Sequential(nn.Linear(3, 2)).astype(np.float64)
    dom = nn.Sequential(nn.Linear(3, 2)).astype(np.float64)
    dann = DANN(feats, clf, dom)
    x_s, x_t = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    y_s = np.array([0, 1, 1])
    w0 = feats[0].weight.data.copy()

    class Capture:
        lr = 1.0

        def zero_grad(self):
            for p in dann.parameters():
                p.grad = None

        def step(self):
            pass

    dann.step(x_s, y_s, x_t, Capture(), grl_scale=0.4)
    analytic = feats[0].weight.grad.copy()

    def objective(w):
        feats[0].weight.data = w
        f = feats(np.concatenate([x_s, x_t]))
        ce = nn.SoftmaxCrossEntropy()
        label = float(ce(clf(f[:3]), y_s))
        domain = float(ce(dom(f), np.array([0, 0, 0, 1, 1])))
        return label - 0.4 * domain  # what the features descend on

    numeric = numerical_gradient(objective, w0.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_grl_schedule_goes_from_0_to_1():
    assert grl_schedule(0.0) == 0.0 and 0.99 < grl_schedule(1.0) < 1.0 and grl_schedule(0.5) < grl_schedule(0.6)


def test_bad_shift_name(tmp_path, capsys):
    assert main(["reproduce", "adaptation", "--shifts", "blur", "--out", str(tmp_path / "x")]) == 2
    assert "unknown shifts ['blur']" in capsys.readouterr().err


def _iit_rows(seeds, shifts=("invert", "rotate")):
    errors = {"baseline": 90.0, "vanilla": 10.0, "freeze": 20.0, "iit": 12.0, "adabn": 50.0}
    return [{"shift": s, "seed": seed, "source_error": 2.0 + 0.1 * i,
             "error": {m: e + 0.2 * i for m, e in errors.items()},
             "kl": {"vanilla": [1.0, 2.0, 3.0], "iit": [1e-6] * 3},
             "curves": {m: list(np.linspace(3.0, 1.0, 5)) for m in ("vanilla", "freeze", "iit")}}
            for s in shifts for i, seed in enumerate(seeds)]


def _dann_rows(seeds):
    return [{"shift": "rotate", "seed": seed, "accuracy": {"BN": 80.0 + i, "AdaBN": 79.0 + i, "TransNorm": 90.0 + i}}
            for i, seed in enumerate(seeds)]


def test_one_seed_tables_have_no_interval_and_no_verdict():
    from minibn.experiments import adaptation
    cfg = adaptation.AdaptationConfig(shifts=["invert", "rotate"], dann_shifts=["rotate"], seeds=[0])
    text, summary = adaptation.tables(_iit_rows([0]), _dann_rows([0]), cfg)
    for banned in ("95%", "beyond the noise", "best vanilla", "within it", "+-", "(1 seed)", "nan"):
        assert banned not in text, banned
    assert text.count("one seed (0): no interval") == 2 and "no verdict" in text
    assert "| vanilla fine-tuning | 10.00 | 10.00 |" in text and "| TransNorm | 90.00 |" in text
    assert "source test set: 2.00%" in text
    title = adaptation.plot(_iit_rows([0]), cfg).axes[1].get_title()
    assert "one seed, no interval" in title and "95%" not in title


def test_several_seeds_tables_have_intervals_and_verdicts():
    from minibn.experiments import adaptation
    cfg = adaptation.AdaptationConfig(shifts=["invert", "rotate"], dann_shifts=["rotate"], seeds=[0, 1, 2])
    text, _ = adaptation.tables(_iit_rows([0, 1, 2]), _dann_rows([0, 1, 2]), cfg)
    assert text.count("mean [95% interval] over seeds [0, 1, 2]") == 2 and "no verdict" not in text
    assert "- error, invert: best vanilla fine-tuning; beyond the noise over no adaptation" in text
    assert "(mean +- std over seeds)" in text
    assert "95% interval over 3 seeds" in adaptation.plot(_iit_rows([0, 1, 2]), cfg).axes[1].get_title()
