"""Batch normalization's forward pass drawn as a computational graph (matplotlib only).

The graph of Algorithm 1 (Ioffe & Szegedy 2015) for one channel: the input values
:math:`x_i` feed the mini-batch mean :math:`\\mu_\\mathcal{B}` (line 1) and variance
:math:`\\sigma_\\mathcal{B}^2` (line 2), the three give :math:`\\hat{x}_i` (line 3), which
with :math:`\\gamma` and :math:`\\beta` gives :math:`y_i` (line 4), and the loss
:math:`\\ell` is computed from the :math:`y_i`. The backward pass of Sec. 3 walks the same
edges from right to left: every node receives :math:`\\partial\\ell/\\partial(\\text{node})`
from the nodes it feeds. Notebook 02 draws the graph once per step of that walk, with the
gradients known so far written under their nodes (``values=``) and the node just computed
highlighted (``highlight=``).
"""

from __future__ import annotations

import math
from numbers import Real

__all__ = ["NODES", "EDGES", "draw_batch_norm_graph"]

# name -> (label in matplotlib's mathtext, position (x, y) on the canvas)
_NODES = {
    "x": (r"$x_i$", (0.0, 0.0)),
    "mu_B": (r"$\mu_\mathcal{B}$", (2.4, 1.7)),
    "var_B": (r"$\sigma_\mathcal{B}^2$", (5.6, 1.7)),
    "x_hat": (r"$\hat{x}_i$", (7.6, 0.0)),
    "gamma": (r"$\gamma$", (9.6, 1.7)),
    "beta": (r"$\beta$", (9.6, -1.7)),
    "y": (r"$y_i$", (11.6, 0.0)),
    "loss": (r"$\ell$", (13.6, 0.0)),
}

NODES = tuple(_NODES)
"""The nodes, named as in the cache of :func:`minibn.functional.batch_norm_forward`
(``x``, ``mu_B``, ``var_B``, ``x_hat``, ``gamma``, ``y``) plus ``beta`` and ``loss``."""

EDGES = (
    ("x", "mu_B", r"$\frac{1}{m}\sum\, x_i$", "Alg. 1, line 1"),
    ("x", "var_B", "", ""),
    ("mu_B", "var_B", r"$\frac{1}{m}\sum\,(x_i-\mu_\mathcal{B})^2$", "line 2"),
    ("x", "x_hat", r"$x_i-\mu_\mathcal{B}$", ""),
    ("mu_B", "x_hat", "", ""),
    ("var_B", "x_hat", r"$\div\sqrt{\sigma_\mathcal{B}^2+\epsilon}$", "line 3"),
    ("x_hat", "y", r"$\gamma\hat{x}_i+\beta$", "line 4"),
    ("gamma", "y", "", ""),
    ("beta", "y", "", ""),
    ("y", "loss", r"$\ell(y_1..y_m)$", ""),
)
"""The edges (from, to, the operation in mathtext, the line of Algorithm 1 it is)."""


def _format(value) -> str:
    """A value to write under a node: a string as it is, a number to 3 digits, an array as
    its first few entries (channel 0 first)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Real):
        return f"{float(value):.3g}"
    try:
        from .backend import asnumpy
        flat = asnumpy(value).reshape(-1)
    except (AttributeError, TypeError, ValueError):
        raise TypeError(f"draw_batch_norm_graph: a value must be a string, a number or an array, "
                        f"got {type(value).__name__}") from None
    shown = ", ".join(f"{float(v):.3g}" for v in flat[:3])
    return f"[{shown}{', ...' if flat.size > 3 else ''}]"


def draw_batch_norm_graph(ax=None, values=None, highlight=()):
    """Draw BN's forward (Algorithm 1) as a computational graph; returns ``(fig, ax)``.

    Args:
        ax: the matplotlib Axes to draw on; None makes a new figure (12 x 4 inches).
        values: optional ``{node: value}`` written under the nodes: a string, a number, or an
            array (its first three entries are shown), e.g. the gradients of a backward step.
            The nodes are :data:`NODES`.
        highlight: node names drawn in orange (the node a backward step has just computed).

    Returns:
        (fig, ax). Each node's label is a text artist of ``ax`` whose ``gid`` is its name.

    Raises:
        ValueError: ``values`` or ``highlight`` names a node that is not in :data:`NODES`.
    """
    import matplotlib.pyplot as plt

    values = dict(values or {})
    highlight = set(highlight)
    unknown = sorted((set(values) | highlight) - set(NODES))
    if unknown:
        raise ValueError(f"draw_batch_norm_graph: unknown node(s) {unknown}; expected names from {list(NODES)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 4))
    else:
        fig = ax.figure
    for src, dst, op, where in EDGES:
        (x0, y0), (x1, y1) = _NODES[src][1], _NODES[dst][1]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.2, shrinkA=20, shrinkB=20), zorder=1)
        if op:
            # the operation beside the middle of its arrow (above a level one, on the left of a
            # slanted one as it points), the line of Algorithm 1 under it, clear of the other arrows
            xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
            text = op + (f"\n{where}" if where else "")
            if y0 == y1:
                ax.text(xm, ym + 0.12, text, ha="center", va="bottom", fontsize=9, color="0.2", zorder=2,
                        linespacing=1.6)
            else:
                length = math.hypot(x1 - x0, y1 - y0)
                nx, ny = -(y1 - y0) / length, (x1 - x0) / length  # the unit normal on the arrow's left
                ax.text(xm + 0.4 * nx, ym + 0.4 * ny, text, ha="right" if nx < 0 else "left", va="center",
                        fontsize=9, color="0.2", zorder=2, linespacing=1.6)
    for name, (label, (px, py)) in _NODES.items():
        color = "#f5a623" if name in highlight else ("#cfe2f3" if name not in ("gamma", "beta") else "#d9ead3")
        ax.text(px, py, label, ha="center", va="center", fontsize=15, gid=name, zorder=3,
                bbox=dict(boxstyle="circle,pad=0.35", fc=color, ec="0.3"))
        if name in values:
            ax.text(px, py - 0.42, _format(values[name]), ha="center", va="top", fontsize=8, color="#b45f06",
                    zorder=3)
    ax.set_xlim(-0.7, 14.3)
    ax.set_ylim(-2.4, 2.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax
