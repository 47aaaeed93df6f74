"""minibn.explore: the default figure always, the controls when ipywidgets is there.

Run headless (matplotlib's Agg backend) with IPython's ``display`` replaced by a recorder,
as a notebook kernel would receive the outputs.
"""

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minibn import explore as ex  # noqa: E402

PNG = b"\x89PNG"


class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(("update", obj))


@pytest.fixture
def shown(monkeypatch):
    """What explore displays: ("display", obj) and ("update", obj) in order."""
    import IPython.display

    log = []

    def display(obj, display_id=None):
        log.append(("display", obj))
        return _Handle(log) if display_id else None

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(ex, "_in_ipython", lambda: True)
    plt.close("all")  # figures other tests left open in this process are not explore's
    return log


def _draw(calls):
    def draw(batch_size, eps, kind):
        calls.append((batch_size, eps, kind))
        x = np.random.default_rng(0).standard_normal(batch_size)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.hist((x - x.mean()) / np.sqrt(x.var() + eps), bins=5)
        ax.set_title(kind)
        return fig
    return draw


KNOBS = dict(batch_size=(8, 2, 64, 2), eps=(1e-5, 0.0, 1.0, 1e-3), kind=["hist", "other"])


def test_without_ipywidgets_only_the_default_figure_is_shown(shown, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    calls = []
    assert ex.explore(_draw(calls), **KNOBS) is None
    assert calls == [(8, 1e-5, "hist")]
    assert len(shown) == 1 and shown[0][0] == "display" and shown[0][1].data.startswith(PNG)
    assert plt.get_fignums() == []  # closed: the inline backend would show it a second time


def test_with_ipywidgets_the_controls_redraw_in_place(shown):
    widgets = pytest.importorskip("ipywidgets")
    calls = []
    ex.explore(_draw(calls), **KNOBS)
    assert [kind for kind, _ in shown] == ["display", "display"]
    assert shown[0][1].data.startswith(PNG)
    box = shown[1][1]
    assert isinstance(box, widgets.VBox)
    controls = {c.description: c for c in box.children[0].children}
    assert isinstance(controls["batch_size"], widgets.IntSlider)
    assert isinstance(controls["eps"], widgets.FloatSlider)
    assert isinstance(controls["kind"], widgets.Dropdown) and controls["kind"].value == "hist"
    assert calls == [(8, 1e-5, "hist")]  # the default is drawn once, not again by interactive_output
    controls["batch_size"].value = 32
    assert calls[-1] == (32, 1e-5, "hist")
    assert shown[-1][0] == "update" and shown[-1][1].data.startswith(PNG)
    controls["kind"].value = "other"
    assert calls[-1] == (32, 1e-5, "other") and len(calls) == 3


def test_outside_ipython_the_figure_goes_to_pyplot_show(monkeypatch):
    monkeypatch.setattr(ex, "_in_ipython", lambda: False)
    shows = []
    monkeypatch.setattr(plt, "show", lambda: shows.append(plt.gcf()))
    calls = []
    ex.explore(_draw(calls), **KNOBS)
    assert calls == [(8, 1e-5, "hist")] and len(shows) == 1
    plt.close("all")


@pytest.mark.parametrize("spec, words", [((5, 0, 4, 1), "low <= default <= high"), ((1, 0, 2, 0), "step > 0"),
                                         ((1, 0, 2), "(default, low, high, step)"), ([], "empty list")])
def test_a_bad_knob_is_named(spec, words):
    with pytest.raises(ValueError, match="'n'") as e:
        ex.explore(lambda n: None, n=spec)
    assert words in str(e.value)


def test_draw_must_return_a_figure(shown):
    with pytest.raises(TypeError, match="got int"):
        ex.explore(lambda n: 3, n=[1])
