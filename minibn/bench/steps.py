"""What the rows time: one call of a layer or of a training step, in minibn and in PyTorch,
and the hand-built PyTorch counterparts of minibn's benchmark networks.

Each ``*_step`` function returns a function of no arguments; one call of it is one timed
call. The inputs are made (and, for PyTorch, copied to the device) before, not in the call.
"""

from __future__ import annotations

from .. import nn, optim


def minibn_layer_step(layer, x, dy, mode):
    """One call of a minibn layer: ``mode`` "forward" (y = layer(x)), "backward" (dx from dy,
    after one forward made the cache) or "both". x, dy: arrays of the layer's input shape."""
    if mode == "forward":
        return lambda: layer(x)
    if mode == "backward":
        layer(x)
        return lambda: layer.backward(dy)

    def both():
        layer(x)
        layer.backward(dy)
    return both


def torch_layer_step(torch, layer, x, dy, mode, device="cpu"):
    """The PyTorch counterpart of :func:`minibn_layer_step` (x, dy: host arrays, copied to
    ``device`` once here). Its "backward" reuses one graph (``retain_graph``)."""
    xt = torch.tensor(x, device=device, requires_grad=True)
    dyt = torch.tensor(dy, device=device)
    layer = layer.to(device)
    if mode == "forward":
        def forward():
            with torch.no_grad():
                layer(xt)
        return forward
    if mode == "backward":
        y = layer(xt)
        return lambda: y.backward(dyt, retain_graph=True)

    def both():
        layer(xt).backward(dyt)
    return both


def torch_device_layer_step(torch, layer, x, dy, device):
    """PyTorch forward+backward on ``device`` (the GPU rows); x.grad is dropped before each
    call, so that the call does not also add the new gradient to the last one (a pass more
    than minibn's)."""
    xt = torch.tensor(x, device=device, requires_grad=True)
    dyt = torch.tensor(dy, device=device)
    layer = layer.to(device)

    def both():
        xt.grad = None
        layer(xt).backward(dyt)
    return both


def layer_bytes(x, mode):
    """The bytes a BN call must move at the least: x and y forward; x, dy and dx backward."""
    return {"forward": 2, "backward": 3, "both": 5}[mode] * x.nbytes


def minibn_train_step(model, x, y, lr=0.1):
    """One SGD step of a minibn model: forward, softmax cross-entropy, backward, update.
    x: (N, ...) inputs, y: (N,) integer labels, on the model's device."""
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=lr)

    def step():
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step()
    return step


def torch_train_step(torch, model, x, y, device="cpu", lr=0.1):
    """The PyTorch counterpart of :func:`minibn_train_step` on ``device`` ("cpu" or "cuda";
    the model and the host arrays x, y are moved there once, here)."""
    xt, yt = torch.tensor(x, device=device), torch.tensor(y, device=device)
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_fig1_mlp(torch):
    """PyTorch's 784-100-100-100-10 sigmoid MLP with BN before each sigmoid: the network of
    :func:`minibn.experiments.fig1_net.build_net` with ``bn=True`` (PyTorch's default init)."""
    layers, width = [], 784
    for _ in range(3):
        layers += [torch.nn.Linear(width, 100, bias=False), torch.nn.BatchNorm1d(100), torch.nn.Sigmoid()]
        width = 100
    layers.append(torch.nn.Linear(100, 10))
    return torch.nn.Sequential(*layers)


def small_conv_net(nn_module):
    """The small conv net on MNIST-sized images, (N, 1, 28, 28) -> (N, 10): two blocks of
    conv 3x3 (no bias) -> BN -> ReLU -> max-pool 2, then a Linear. ``nn_module``:
    :mod:`minibn.nn` or ``torch.nn``, whose layers have the same names and arguments."""
    T = nn_module
    return T.Sequential(T.Conv2d(1, 8, 3, padding=1, bias=False), T.BatchNorm2d(8), T.ReLU(), T.MaxPool2d(2),
                        T.Conv2d(8, 16, 3, padding=1, bias=False), T.BatchNorm2d(16), T.ReLU(), T.MaxPool2d(2),
                        T.Flatten(), T.Linear(16 * 7 * 7, 10))
