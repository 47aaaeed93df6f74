"""Things to explore: a figure with sliders, for the course's notebooks.

``explore(draw, **knobs)`` shows the figure that ``draw`` makes with the knobs' default
values, as an ordinary image output: a notebook executed headless (CI, ``nbgrader
autograde``, the documentation site) keeps it. When ipywidgets is importable it also shows
one control per knob (a slider, or a drop-down list), and moving a control draws the figure
again with the new values, in place of the default one.

Example (in a notebook cell)::

    import matplotlib.pyplot as plt
    import numpy as np
    from minibn.explore import explore

    def draw(batch_size, eps):
        x = np.random.default_rng(0).standard_normal((batch_size, 1))
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.hist((x - x.mean()) / np.sqrt(x.var() + eps), bins=20)
        return fig

    explore(draw, batch_size=(16, 2, 256, 2), eps=[1e-5, 1e-1])

The library holds no plotting state: ``draw`` is a plain function of the knobs' values
that returns a matplotlib Figure (or draws on the current one), and it should be cheap
(well under a second in fast mode), because every move of a slider calls it.
"""

from __future__ import annotations

import io
from numbers import Real

__all__ = ["explore", "knob_defaults"]


def _check_knob(name, spec):
    """Raise ValueError unless ``spec`` is ``(default, low, high, step)`` or a non-empty list."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"explore: knob {name!r} is an empty list of choices; expected at least one choice")
        return
    if not (isinstance(spec, tuple) and len(spec) == 4 and all(isinstance(v, Real) for v in spec)):
        raise ValueError(f"explore: knob {name!r} must be (default, low, high, step) numbers or a list of "
                         f"choices, got {spec!r}")
    default, low, high, step = spec
    if not low <= default <= high or step <= 0:
        raise ValueError(f"explore: knob {name!r} = {spec!r}: expected low <= default <= high and step > 0")


def knob_defaults(**knobs) -> dict:
    """The default value of each knob: the first element of a ``(default, low, high, step)``
    tuple, the first choice of a list. Raises ValueError for a knob of any other form."""
    for name, spec in knobs.items():
        _check_knob(name, spec)
    return {name: spec[0] for name, spec in knobs.items()}


def _figure_of(drawn):
    """The Figure that ``draw`` returned, or matplotlib's current one if it returned None."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if isinstance(drawn, Figure):
        return drawn
    if drawn is None:
        return plt.gcf()
    fig = getattr(drawn, "figure", None)  # an Axes
    if isinstance(fig, Figure):
        return fig
    raise TypeError(f"explore: draw(...) must return a matplotlib Figure (or Axes, or None), "
                    f"got {type(drawn).__name__}")


def _png(draw, values):
    """Call ``draw(**values)`` and return its figure as PNG bytes; the figure is closed, so
    that a notebook's inline backend does not show it a second time at the end of the cell."""
    import matplotlib.pyplot as plt

    fig = _figure_of(draw(**values))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _in_ipython() -> bool:
    """Whether an IPython shell (a notebook's kernel, or the IPython console) is running."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _control(name, spec, widgets):
    """The ipywidgets control for one knob."""
    if isinstance(spec, list):
        return widgets.Dropdown(options=spec, value=spec[0], description=name)
    default, low, high, step = spec
    kind = widgets.IntSlider if all(isinstance(v, int) and not isinstance(v, bool) for v in spec) else \
        widgets.FloatSlider
    return kind(value=default, min=low, max=high, step=step, description=name, continuous_update=False)


def explore(draw, **knobs) -> None:
    """Show ``draw``'s figure for the knobs' defaults and, with ipywidgets, controls that redraw it.

    Args:
        draw: ``draw(**values) -> matplotlib Figure`` (an Axes, or None for the current
            figure, also do), called with one keyword argument per knob.
        **knobs: ``name=(default, low, high, step)`` for a slider (an integer slider when
            all four are ints), or ``name=[choice, ...]`` for a drop-down list whose first
            choice is the default.

    The default figure is always shown as an ordinary PNG output (so a notebook executed
    without a browser keeps it). With ipywidgets importable, the controls follow it, and a
    change calls ``draw`` again through ``ipywidgets.interactive_output`` and replaces the
    image in place. Outside IPython the figure is handed to ``matplotlib.pyplot.show``.

    Raises:
        ValueError: a knob is neither a 4-tuple of numbers with low <= default <= high and
            step > 0 nor a non-empty list.
        TypeError: ``draw`` returned something other than a Figure, an Axes or None.
    """
    defaults = knob_defaults(**knobs)
    if not _in_ipython():  # a plain Python script: no notebook to show an image in
        import matplotlib.pyplot as plt
        _figure_of(draw(**defaults))
        plt.show()
        return None
    from IPython.display import Image, display
    handle = display(Image(data=_png(draw, defaults)), display_id=True)
    try:
        import ipywidgets as widgets
    except ImportError:  # the default figure stays; `pip install minibn[notebooks]` adds the sliders
        return None
    controls = {name: _control(name, spec, widgets) for name, spec in knobs.items()}
    shown = dict(defaults)

    def redraw(**values):
        # interactive_output calls this once at once with the defaults: that figure is shown already
        if values != shown:
            shown.clear()
            shown.update(values)
            handle.update(Image(data=_png(draw, values)))

    out = widgets.interactive_output(redraw, controls)
    display(widgets.VBox([widgets.HBox(list(controls.values())), out]))
    return None
