"""The training loop, evaluation, and a recorder of activation percentiles.

``fit`` runs a fixed number of SGD steps over an endless batch iterator, evaluates
every ``eval_every`` steps, calls callbacks, and shows a progress bar (:func:`progress_bar`:
a tqdm bar shaped for where it is shown: a terminal, a notebook, or a log). Inside a
step nothing is copied to the host: the running loss is summed on the device and read
only at evaluation time (on a GPU, a host read would wait for the device every step).

A KeyboardInterrupt (Ctrl-C) stops training cleanly: ``fit`` evaluates once more (a second
Ctrl-C skips that) and returns the history so far with ``history.interrupted = True``, so
the caller can still write its outputs.
"""

from __future__ import annotations

import numbers
import re
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import backend


@dataclass
class History:
    """What ``fit`` measured. ``eval_steps[i]`` is the step after which ``metrics[k][i]`` was taken."""

    eval_steps: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    steps_done: int = 0
    train_seconds: float = 0.0
    interrupted: bool = False

    def add(self, step, values):
        self.eval_steps.append(step)
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(v)


def _in_notebook_kernel():
    """True in a Jupyter kernel (JupyterLab, VS Code, nbclient, nbconvert --execute), where the
    cell's outputs are all the user sees: no terminal to redraw a line in."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a broken or partial IPython: not a kernel we can display in
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except Exception:  # a closed or odd stream
        return False


_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _states(text):
    """The bar states in what tqdm writes: it starts each with a carriage return and moves
    the cursor with escape codes (for stacked bars); keep the text, drop the moves."""
    for part in _ESCAPES.sub("", text).replace("\n", "\r").split("\r"):
        if part.strip():
            yield part.rstrip()


class _DisplayLine:
    """A file for tqdm in a notebook kernel: the bar is one display output whose text each new
    state replaces (``update_display``), so the cell shows one line that moves, and an executed
    notebook (nbclient, which applies the updates) keeps one line: the final state. Whatever
    clears the bar (``leave=False``) is ignored: the last state stays, which is what a reader
    of the notebook wants to see."""

    encoding = "utf-8"  # tqdm draws its unicode blocks

    def __init__(self):
        self._handle, self._shown = None, None

    def write(self, text):
        for state in _states(text):
            if state == self._shown:
                continue
            from IPython.display import display
            bundle = {"text/plain": state}
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)
            self._shown = state

    def flush(self):
        pass


class _Lines:
    """A file for tqdm where nothing can be redrawn (a pipe, a log file, a training process
    started by a notebook, whose stderr the kernel copies into the cell): each state becomes
    one whole line, so bars of several processes do not write over one another."""

    def __init__(self, stream):
        self._stream, self._shown = stream, None
        self.encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text):
        for state in _states(text):
            if state != self._shown:
                self._stream.write(state + "\n")
                self._shown = state
        self._stream.flush()

    def flush(self):
        self._stream.flush()


#: where nothing can be redrawn, a bar writes a line when it starts, at most one a minute
#: (a long run is seen to progress in a log), and one when it ends
LINE_INTERVAL_SECONDS = 60.0


def progress_bar(total, desc=None, disable=False, position=None, leave=True, mininterval=0.5, **kwargs):
    """A tqdm progress bar that reads well where it is shown.

    * In a terminal (stderr is a TTY): an ordinary tqdm bar, redrawn in place; ``position``
      stacks the bars of several processes, ``leave`` says whether it stays.
    * In a notebook kernel: one line of text in the cell, replaced as the bar moves, that
      stays at its final state (also in an executed notebook's saved outputs, where a widget
      would show its first state, "0%", for ever).
    * Elsewhere (a pipe, a log file, the worker processes a notebook starts): one line at
      the start, at most one a minute, and one at the end with the totals; never a cursor
      move or a carriage return.

    Other keyword arguments go to tqdm. Print through ``tqdm.write`` while a bar runs (as
    minibn's one-time "compiling" message does), so the message does not break into the bar.
    """
    from tqdm import tqdm

    if disable:
        return tqdm(total=total, desc=desc, disable=True, **kwargs)
    if _in_notebook_kernel():
        return tqdm(total=total, desc=desc, file=_DisplayLine(), position=0, leave=True, mininterval=mininterval,
                    **kwargs)
    if _is_terminal(sys.stderr):
        return tqdm(total=total, desc=desc, file=sys.stderr, position=position, leave=leave,
                    mininterval=mininterval, **kwargs)
    return tqdm(total=total, desc=desc, file=_Lines(sys.stderr), position=0, leave=True,
                mininterval=max(mininterval, LINE_INTERVAL_SECONDS), maxinterval=float("inf"), **kwargs)


def evaluate(model, x, y, loss_fn=None, batch_size=10000):
    """Accuracy (and mean loss if ``loss_fn`` is given) of ``model`` in eval mode on (x, y).

    Parameters
    ----------
    model : Module
        Returns logits (N, classes) for inputs x; its train/eval mode is restored afterwards.
    x : ndarray, shape (N, ...)
        The inputs, on the model's device.
    y : ndarray of int, shape (N,)
        The class index of each input (not one-hot), on the same device.
    loss_fn : callable, optional
        ``loss_fn(logits, labels)`` -> mean loss of a batch, e.g. ``nn.SoftmaxCrossEntropy()``.
    batch_size : int, optional
        Rows per forward.

    Returns
    -------
    dict
        ``{"accuracy": float}``, and ``"loss": float`` (the mean over the N rows) with loss_fn.

    Raises
    ------
    ValueError
        If y is not N integer labels.
    """
    if getattr(y, "ndim", None) != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        shape = tuple(getattr(y, "shape", ()))
        dtype = getattr(y, "dtype", type(y).__name__)
        raise ValueError(f"evaluate: expected y of shape ({len(x)},), one integer class index per row of x, got "
                         f"shape {shape} of dtype {dtype}"
                         + (" (a column of labels? pass y.ravel())" if len(shape) == 2 and shape[1] == 1 else
                            " (one-hot labels? pass y.argmax(axis=1))" if len(shape) == 2 else ""))
    correct, total_loss = 0, 0.0
    with model.mode(training=False):
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size])
            yb = y[i:i + batch_size]
            correct += int((logits.argmax(axis=1) == yb).sum())
            if loss_fn is not None:
                total_loss += float(loss_fn(logits, yb)) * len(yb)
    out = {"accuracy": correct / len(x)}
    if loss_fn is not None:
        out["loss"] = total_loss / len(x)
    return out


def _metrics(metrics):
    """What an ``eval_fn`` returned, if it is a dict of numbers; TypeError naming what is not
    (a dict inside the dict failed only later, in the progress bar's formatting)."""
    if not isinstance(metrics, dict):
        raise TypeError(f"fit: eval_fn must return a dict of numbers (metric name -> value), got {metrics!r}")

    def number(v):  # a 0-d array (a CuPy mean, say) counts as the number it holds
        return isinstance(v, numbers.Real) or (getattr(v, "ndim", None) == 0 and v.dtype.kind in "biuf")

    bad = [f"{k!r} is a {type(v).__name__}" for k, v in metrics.items() if not number(v)]
    if bad:
        raise TypeError(f"fit: eval_fn must return a dict of numbers (metric name -> value), got {metrics!r}: "
                        f"{', '.join(bad)}")
    return {k: v if isinstance(v, numbers.Real) else float(v) for k, v in metrics.items()}


def _warn_if_double_forward_is_needed(model):
    """A Memorized BN built with ``double_forward=True`` records its memory only in
    :func:`second_forward`: trained by a fit without it, its memory stays empty, and that would
    surface only at the first eval-mode forward."""
    from .nn.memorized import MemorizedBatchNorm

    modules = model.modules() if hasattr(model, "modules") else ()
    names = sorted({type(m).__name__ for m in modules if isinstance(m, MemorizedBatchNorm) and m.double_forward})
    if names:
        warnings.warn(f"fit: {', '.join(names)} built with double_forward=True records its memory only in the "
                      f"second forward after each update, which this fit does not run: pass "
                      f"fit(..., double_forward=True)", stacklevel=3)


def second_forward(model, x):
    """Double-Forward (Guo et al. 2018, Algorithm 1, lines 10-12): after the optimizer
    step, run the same batch through the model again, without gradient, so that every
    Memorized BN layer with ``double_forward=True`` records the batch statistics under
    the *updated* parameters. Everything else is left as it was: the other layers' buffers
    (running statistics, and the memory of a Memorized BN without double_forward: this
    second pass must not count as another training batch for them) and every layer's
    cache of the first forward.
    """
    from .nn.memorized import MemorizedBatchNorm

    recorders = [m for m in model.modules() if isinstance(m, MemorizedBatchNorm) and m.double_forward]
    saved = []
    for m in model.modules():
        own = () if any(m is r for r in recorders) else m._buffers
        buffers = {n: getattr(m, n).copy() for n in own if hasattr(getattr(m, n), "copy")}
        saved.append((m, dict(vars(m)), buffers))
    for m in recorders:
        m._recording = True
    try:
        model(x)
    finally:
        for m, attrs, buffers in saved:
            keep = set(m._buffers) if any(m is r for r in recorders) else set()
            for name, value in attrs.items():
                if name not in keep:
                    setattr(m, name, value)
            for name, value in buffers.items():
                setattr(m, name, value)


def interrupt(e):
    """Whether the exception ``e`` is Ctrl-C (or SIGTERM, which the ``minibn`` command and its
    workers turn into Ctrl-C). Usually that is a KeyboardInterrupt; but one that arrives while
    a numba-compiled function is calling back into Python comes out of it as a SystemError
    ("... returned a result with an exception set") caused by the KeyboardInterrupt, and must
    stop training the same way, not lose the run."""
    while isinstance(e, SystemError) and e.__cause__ is not None:
        e = e.__cause__
    return isinstance(e, KeyboardInterrupt)


def fit(model, loss_fn, optimizer, batches, steps, eval_fn=None, eval_every=None, callbacks=(),
        schedulers=(), progress=True, desc="train", after_step=None, position=0, double_forward=False):
    """Train for ``steps`` SGD steps.

    Args:
        batches: an endless iterator of (x, labels) on the model's device.
        eval_fn: ``eval_fn() -> dict`` of metrics (name -> number, e.g. :func:`evaluate`'s),
            called after step 0 (before training), every ``eval_every`` steps and after the
            last step.
        callbacks: callables ``cb(step, model)`` called at the same moments as eval_fn.
        schedulers: objects with ``.step()`` (see :class:`minibn.optim.Scheduler`), called
            before each step.
        after_step: optional ``after_step(model, x, labels)`` called after each optimizer step.
        double_forward: after each optimizer step, run :func:`second_forward` on the same
            batch, so Memorized BN layers built with ``double_forward=True`` record their
            statistics under the updated parameters (Guo et al. 2018, Algorithm 1).

    Returns a :class:`History` with the mean training loss between evaluations
    ("train_loss") and whatever eval_fn returns.

    A model trained across processes (:class:`minibn.distributed.DataParallel`, which has
    ``loss_over_ranks``) sees only its rank's rows of each batch; its "train_loss" is still
    that of the whole batch: each rank sums its per-row losses and rows, and the sums of all
    ranks are added at each evaluation (one small collective, on every rank).
    """
    if steps < 1:
        raise ValueError(f"fit: steps must be >= 1, got {steps}")
    if not hasattr(batches, "__next__"):
        raise TypeError(f"fit: batches must be an iterator of (x, labels) pairs, e.g. a minibn.data.BatchIterator, "
                        f"or iter(pairs) or itertools.cycle(pairs) of a list of pairs; got a {type(batches).__name__}")
    eval_every = eval_every or steps
    history = History()
    model.train()
    if not double_forward and after_step is None:
        _warn_if_double_forward_is_needed(model)
    owned = getattr(optimizer, "params", None)
    if owned and hasattr(model, "parameters") and not {id(p) for p in owned} & {id(p) for p in model.parameters()}:
        raise ValueError(f"fit: the optimizer holds none of the model's parameters (built on another model's "
                         f"parameters?): build it as {type(optimizer).__name__}(model.parameters(), ...)")
    over_ranks = getattr(model, "loss_over_ranks", None)

    def checkpoint(step, loss_sum, n, collective=True):
        loss_sum = float(loss_sum)
        if over_ranks is not None and collective:
            loss_sum, n = over_ranks(loss_sum, n)
        values = {"train_loss": loss_sum / n if n else float("nan")}
        if eval_fn is not None:
            values.update(_metrics(eval_fn()))
        history.add(step, values)
        for cb in callbacks:
            cb(step, model)
        return values

    checkpoint(0, 0.0, 0)
    loss_sum, n = 0.0, 0
    start = time.perf_counter()
    bar = progress_bar(steps, desc=desc, disable=not progress, leave=False, position=position)
    step = 0
    try:
        for step in range(1, steps + 1):
            for s in schedulers:
                s.step()
            x, labels = next(batches)
            loss = loss_fn(model(x), labels)
            optimizer.zero_grad()  # the optimizer's flat list: cheaper than walking the model
            model.backward(loss_fn.backward(), need_dx=False)
            optimizer.step()
            if double_forward:
                second_forward(model, x)
            if after_step is not None:
                after_step(model, x, labels)
            if over_ranks is None:
                loss_sum = loss_sum + loss  # stays on the device: no synchronisation per step
                n += 1
            else:  # this rank's rows are a part of the batch: sum per row, to add the parts up
                loss_sum = loss_sum + loss * len(labels)
                n += len(labels)
            if step % eval_every == 0 or step == steps:
                history.train_seconds += time.perf_counter() - start
                values = checkpoint(step, loss_sum, n)
                bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
                loss_sum, n = 0.0, 0
                start = time.perf_counter()
            bar.update(1)
        history.steps_done = steps
    except (KeyboardInterrupt, SystemError) as e:
        if not interrupt(e):
            raise
        history.interrupted = True
        history.steps_done = max(step - 1, 0)
        if history.eval_steps[-1] != history.steps_done:
            # evaluate once more, so that the "final" metrics are those of the steps done,
            # not of the last scheduled evaluation (step 0 in a short run)
            history.train_seconds += time.perf_counter() - start
            try:
                # no collective here: the ranks may have been interrupted at different steps, and
                # would wait for each other for ever (this rank's own loss is recorded)
                checkpoint(history.steps_done, loss_sum, n, collective=False)
            except (KeyboardInterrupt, SystemError) as again:  # a second Ctrl-C: stop now
                if not interrupt(again):
                    raise
    finally:
        bar.close()
    return history


class ActivationRecorder:
    """Records percentiles of the input of one layer, for chosen units, on a fixed probe set.

    The BN paper's Fig. 1(b, c): the {15, 50, 85}th percentiles of the input of one
    typical sigmoid of the last hidden layer, over training. Use it as a ``fit``
    callback: each call runs the probe through ``model[:layer_index]`` in eval mode (BN
    with its running statistics, i.e. the inference network; the model's mode is
    restored) and stores ``percentiles`` of each unit's values over the probe set.

    ``steps``: the steps recorded; ``values``: array (T, len(units), len(percentiles)).
    """

    def __init__(self, model, layer_index, units, probe, percentiles=(15, 50, 85)):
        if not 0 <= layer_index < len(model):
            raise ValueError(f"ActivationRecorder: layer_index must be in [0, {len(model)}), got {layer_index}")
        self.model, self.layer_index = model, layer_index
        self.units, self.probe, self.percentiles = list(units), probe, tuple(percentiles)
        self.steps, self._values = [], []
        # the index and the percentiles as arrays on the probe's device, made once: a Python list or
        # tuple given to CuPy is copied to the device at every call
        xp = backend.get_array_module(probe)
        self._unit_index = xp.asarray(self.units, dtype=np.intp)
        self._q = xp.asarray(self.percentiles, dtype=np.float64)

    def layer_input(self):
        """(probe size, features) input of the recorded layer, on the device."""
        with self.model.mode(training=False):
            h = self.probe
            for layer in self.model.layers[:self.layer_index]:
                h = layer(h)
        return h

    def __call__(self, step, model=None):
        h = self.layer_input()[:, self._unit_index]
        q = backend.get_array_module(h).percentile(h.astype("float64"), self._q, axis=0)
        self.steps.append(step)
        self._values.append(backend.asnumpy(q).T)  # (units, percentiles): a transfer at the edge

    @property
    def values(self):
        return np.array(self._values).reshape(len(self._values), len(self.units), len(self.percentiles))
