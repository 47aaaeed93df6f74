"""minibn.graph: BN's forward drawn as a computational graph (headless, matplotlib Agg)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minibn import functional as F  # noqa: E402
from minibn.graph import EDGES, NODES, draw_batch_norm_graph  # noqa: E402


def _nodes(ax):
    return {t.get_gid(): t for t in ax.texts if t.get_gid()}


def test_it_draws_the_nodes_of_algorithm_1_and_returns_the_figure():
    fig, ax = draw_batch_norm_graph()
    assert fig is ax.figure and isinstance(fig, matplotlib.figure.Figure)
    assert set(_nodes(ax)) == set(NODES) == {"x", "mu_B", "var_B", "x_hat", "gamma", "beta", "y", "loss"}
    assert _nodes(ax)["var_B"].get_text() == r"$\sigma_\mathcal{B}^2$"
    # every edge is an arrow, and the graph is the one of Algorithm 1: x_hat depends on x, mu_B, var_B
    arrows = [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation) and t.arrow_patch is not None]
    assert len(arrows) == len(EDGES)
    assert {src for src, dst, *_ in EDGES if dst == "x_hat"} == {"x", "mu_B", "var_B"}
    assert {src for src, dst, *_ in EDGES if dst == "y"} == {"x_hat", "gamma", "beta"}
    fig.canvas.draw()  # the mathtext labels parse
    plt.close(fig)


def test_values_are_written_under_their_nodes_and_highlight_colours_a_node():
    x = 3 * np.random.default_rng(0).standard_normal((6, 2)) + 1
    y, cache = F.batch_norm_forward(x, np.ones(2), np.zeros(2))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    *_, inter = F.batch_norm_backward_paper(dy, cache, return_intermediates=True)
    fig, ax = plt.subplots()
    out = draw_batch_norm_graph(ax, values={"x_hat": inter["dx_hat"], "var_B": inter["dvar_B"], "loss": "1"},
                                highlight=["var_B"])
    assert out == (fig, ax)
    texts = [t.get_text() for t in ax.texts]
    first = ", ".join(f"{v:.3g}" for v in inter["dx_hat"].reshape(-1)[:3])
    assert f"[{first}, ...]" in texts and f"[{inter['dvar_B'][0]:.3g}, {inter['dvar_B'][1]:.3g}]" in texts
    nodes = _nodes(ax)
    assert nodes["var_B"].get_bbox_patch().get_facecolor() != nodes["mu_B"].get_bbox_patch().get_facecolor()
    fig.canvas.draw()
    plt.close(fig)


def test_an_unknown_node_is_named():
    with pytest.raises(ValueError, match=r"unknown node\(s\) \['dx'\]"):
        draw_batch_norm_graph(values={"dx": 1.0})
