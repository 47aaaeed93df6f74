"""Domain-adversarial training (DANN; Ganin & Lempitsky 2015), hand-wired with explicit backward.

Three parts: a feature extractor F, a label classifier C on the features, and a domain
classifier D behind a gradient-reversal layer. Each step takes a labelled source batch
and an unlabelled target batch, runs F once on [source; target] (so normalization
layers such as TransNorm see both halves), and minimizes

    CE(C(F(x_s)), y_s) + CE(D(GRL(F(x))), domain)       (domain: 0 source, 1 target)

The reversal makes F *maximize* the domain loss: its features become hard to tell apart
across domains. The gradient w.r.t. the features is assembled by hand: the domain
branch's (already reversed) gradient for all rows plus the classifier's for the source
rows.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend, nn


class DANN:
    """features: Module (N, in) -> (N, F); classifier: (N, F) -> (N, K); domain: (N, F) -> (N, 2)."""

    def __init__(self, features, classifier, domain):
        self.features, self.classifier = features, classifier
        self.grl = nn.GradientReversal(0.0)
        self.domain = domain
        self.model = nn.Sequential(features, classifier)  # what is evaluated (and adapted)
        self._ce_c, self._ce_d = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()

    def parameters(self):
        return self.features.parameters() + self.classifier.parameters() + self.domain.parameters()

    def train(self):
        for m in (self.features, self.classifier, self.domain):
            m.train()

    def step(self, x_s, y_s, x_t, optimizer, grl_scale):
        """One SGD step; returns (label loss, domain loss) as device scalars."""
        xp = backend.get_array_module(x_s)
        n_s = len(x_s)
        x = xp.concatenate([x_s, x_t])
        domain_labels = xp.concatenate([xp.zeros(n_s, dtype="int64"), xp.ones(len(x_t), dtype="int64")])
        self.grl.scale = grl_scale
        f = self.features(x)
        loss_c = self._ce_c(self.classifier(f[:n_s]), y_s)
        loss_d = self._ce_d(self.domain(self.grl(f)), domain_labels)
        optimizer.zero_grad()
        df = self.grl.backward(self.domain.backward(self._ce_d.backward()))
        df[:n_s] += self.classifier.backward(self._ce_c.backward())
        self.features.backward(df, need_dx=False)
        optimizer.step()
        return loss_c, loss_d


def grl_schedule(progress, gamma=10.0):
    """DANN's reversal weight 2 / (1 + exp(-gamma p)) - 1, from 0 to ~1 over training (p in [0, 1])."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def train_dann(dann, source, target_x, steps, batch_size=32, lr=0.01, momentum=0.9, seed=0):
    """Train ``dann`` for ``steps`` steps on labelled ``source`` = (x, y) and unlabelled target_x."""
    from . import optim
    from .data import BatchIterator

    src = BatchIterator(source[0], source[1], batch_size, seed=seed)
    tgt = BatchIterator(target_x, np.zeros(len(target_x), np.int64), batch_size, seed=seed + 1)
    opt = optim.SGD(dann.parameters(), lr=lr, momentum=momentum)
    dann.train()
    for step in range(steps):
        x_s, y_s = next(src)
        x_t, _ = next(tgt)
        dann.step(x_s, y_s, x_t, opt, grl_schedule(step / steps))
    return dann
