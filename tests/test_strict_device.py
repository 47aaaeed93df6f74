"""The GPU code paths, run on the strict stand-in for CuPy (tests/strict_device.py).

On a machine without a GPU, ``tests/test_gpu.py`` and every ``backend_name == "cupy"`` test
skip: the CuPy paths are never run. Here they are, on "device" arrays that refuse implicit
host<->device conversion as CuPy does and count every transfer and synchronization:

1. every case of the layer specs (minibn.testing.layer_cases()), forward and backward in
   training and eval mode, for every implementation that runs on device arrays, against the
   NumPy result (float64, 1e-10), with no transfer or sync inside the layer's step; and
   tests/test_gpu.py's own test, run on the stand-in;
2. one training step of each experiment's network (Fig. 1 MLP and its normalization variants,
   the small-batch MLPs, the adaptation and DANN nets, the small conv net of minibn/bench/steps.py) moved
   with ``model.to("gpu")``, against the NumPy step, and the transfers inside a step: none;
3. the library calls the notebooks and experiments make on device models: adapt.*,
   gradcheck, checkpoints, train.fit / evaluate, the activation recorder, data parallelism.

Known bugs are marked ``xfail(strict=True, reason="bug: file:line ...")``: the suite stays
green until the fix lands, and then says so (an unexpected pass fails a strict xfail).
"""

import copy
import os

import numpy as np
import pytest

import minibn as mb
from minibn import adapt, backend, checkpoint, dispatch, gradcheck, nn, optim, train
from minibn import functional as F
from minibn.data import BatchIterator
from minibn.experiments import adaptation, drift, small_batch
from minibn.testing import layer_cases
from tests import strict_device as sd
from tests import test_gpu

ZERO = {"h2d": 0, "d2h": 0, "sync": 0, "implicit": 0}


@pytest.fixture
def device():
    """The stand-in installed as backend.cupy (the active backend stays numpy); yields the counter."""
    with sd.installed() as counter:
        yield counter


@pytest.fixture
def on_gpu(device):
    """The stand-in installed and made the active backend (``backend.use("cupy")``)."""
    backend.use("cupy")
    yield device


def assert_close(device_value, host_value, rtol=1e-10, atol=1e-12, what=""):
    assert isinstance(device_value, sd.DeviceArray), f"{what}: expected a device array, got {type(device_value)}"
    np.testing.assert_allclose(sd.host(device_value), host_value, rtol=rtol, atol=atol, err_msg=what)


def assert_same_state(cpu_model, gpu_model, rtol=1e-10, atol=1e-12, grads=True):
    """Every parameter, gradient (with ``grads``) and buffer of the device model equals the host model's."""
    for (n, p), (_, q) in zip(cpu_model.named_parameters(), gpu_model.named_parameters()):
        assert_close(q.data, p.data, rtol, atol, n)
        if grads and p.grad is not None:
            assert_close(q.grad, p.grad, rtol, atol, n + ".grad")
    for (n, a), (_, b) in zip(cpu_model.named_buffers(), gpu_model.named_buffers()):
        if isinstance(a, np.ndarray):
            assert_close(b, a, rtol, atol, n)
        else:
            assert a == b, n


# -- 0. the stand-in refuses what CuPy refuses, and counts what CuPy pays for -----------------

def test_stand_in_refuses_implicit_conversions(device):
    d = sd.cupy.asarray(np.arange(6.0).reshape(2, 3))
    assert device.counts() == {**ZERO, "h2d": 1}
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(d)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.testing.assert_allclose(d, 0)
    with pytest.raises(TypeError, match="Unsupported type"):
        d + np.ones(3)                     # host array mixed in arithmetic
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3) * d
    with pytest.raises(TypeError, match="Unsupported type"):
        sd.cupy.exp(np.ones(3))            # host array given to a CuPy function
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.zeros(6)[sd.cupy.arange(2)]     # device index into a host array
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.zeros(3)[...] = d[0]            # device values written into a host array
    with pytest.raises(ValueError, match="cannot be used for fill"):
        d[...] = np.ones((2, 3))           # host values written through a basic index
    with pytest.raises(TypeError, match="no implementation found"):
        np.insert(d, 0, 1.0)               # a NumPy function CuPy does not have
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        range(d[0, 1].astype(int))         # no __index__, as CuPy
    assert device.counts() == {**ZERO, "h2d": 1}


def test_stand_in_follows_numpy_functions_onto_the_device_and_counts_syncs(device):
    d = sd.on_device(np.arange(6.0).reshape(2, 3))
    for r in (np.mean(d), d.sum(), np.exp(d), np.concatenate([d, d]), d[0, 1], d * np.float64(2), d > np.array(1.0)):
        assert isinstance(r, sd.DeviceArray)  # reductions and elements are 0-d device arrays, as in CuPy
    assert device.total() == 0
    assert float(d.sum()) == 15.0 and bool(d[0, 1] == 1.0) and d[1, 2].item() == 5.0
    assert f"{d[0, 0]:.1f}" == "0.0"
    assert sd.host(d[d > 2]).tolist() == [3.0, 4.0, 5.0]   # a mask index: sized by the values (a sync)
    assert sd.host(d[:, [4, -1]]).tolist() == [[1.0, 2.0], [4.0, 5.0]]  # host list index, wrapping around
    assert sd.cupy.asnumpy(d).flags.c_contiguous and isinstance(d.get(), np.ndarray)
    assert device.counts() == {"h2d": 0, "d2h": 2, "sync": 5, "implicit": 1}
    assert "test_strict_device.py" in next(iter(device.places("implicit")))


def test_installed_is_what_the_backend_sees_and_is_undone(device):
    assert backend.available() == ("numpy", "cupy")
    x = backend.to_device(np.ones((2, 3)), "gpu")
    assert backend.is_gpu_array(x) and backend.device_of(x) == "gpu" and backend.get_array_module(x) is sd.cupy
    backend.use("cupy")
    assert backend.xp() is sd.cupy and isinstance(nn.Linear(3, 2).weight.data, sd.DeviceArray)
    # the numba-cuda kernels are never selected for stand-in arrays (they need __cuda_array_interface__)
    for op in ("batch_norm", "layer_norm", "group_norm", "batch_renorm"):
        assert dispatch.select(op, "auto", backend.to_device(np.ones((70000, 2)), "gpu")).name != "fused"
    assert not hasattr(x, "__cuda_array_interface__")


def test_installed_restores_the_backend():
    before = (backend.cupy, backend._active, backend._ENV_ERROR, backend.available())
    with sd.installed():
        backend.use("cupy")
    assert (backend.cupy, backend._active, backend._ENV_ERROR, backend.available()) == before


# -- 1. the layer specs on the device ------------------------------------------------------------

CASES = layer_cases()
MODES = ("train", "eval")


def _batch_statistics(case, mode):
    return mode == "train" or case.kwargs.get("track_running_stats") is False


def expected_transfers(case, mode):
    """What one forward + backward of the layer costs in transfers: nothing, except SyncBatchNorm
    with batch statistics, whose communicator (mpi4py) exchanges host buffers: the moments go
    down and come back (2 + 2), the backward's two sums once each way (1 + 1)."""
    if case.layer == "SyncBatchNorm" and _batch_statistics(case, mode):
        return {**ZERO, "h2d": 3, "d2h": 3}
    return ZERO


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer_case_on_device(device, case, mode):
    if case.layer == "Dropout" and mode == "train":
        pytest.skip("the device has its own random generator")
    backend.seed(0)
    layer = case.make_layer().astype(np.float64).to("cpu")
    x = case.make_input(np.random.default_rng(0))
    if case.impl is not None and case.impl not in dispatch.available(case.spec.op, sd.on_device(x)):
        pytest.skip(f"{case.impl!r} does not run on device arrays (the device runs another case's implementation)")
    gpu = copy.deepcopy(layer).to("gpu")
    layer.train(mode == "train")
    gpu.train(mode == "train")
    y_shape = copy.deepcopy(layer)(x).shape  # on a copy: a forward changes running statistics and memories
    dy = np.random.default_rng(1).standard_normal(y_shape)
    backend.seed(0)
    y_cpu, dx_cpu = layer(x), layer.backward(dy)
    x_d, dy_d = sd.on_device(x), sd.on_device(dy)
    with device.watch() as seen:
        y = gpu(x_d)
        dx = gpu.backward(dy_d)
    assert_close(y, y_cpu, what="y")
    assert_close(dx, dx_cpu, rtol=1e-9, what="dx")
    assert_same_state(layer, gpu, rtol=1e-9)
    assert seen.counts() == expected_transfers(case, mode), seen.places()


def _test_gpu_params():
    """tests/test_gpu.py's own test, for every case and mode."""
    return [pytest.param(case, mode, id=f"{case.name}-{mode}") for case in test_gpu.CASES for mode in MODES]


@pytest.mark.parametrize("case, mode", _test_gpu_params())
def test_the_gpu_test_on_the_stand_in(device, case, mode):
    test_gpu.test_cpu_and_gpu_agree(case, mode)


# -- 2. one training step of each experiment's network --------------------------------------------

def _conv_net():
    """The small conv net of minibn/bench/steps.py (small_conv_net), built here with minibn.nn."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


_SMALL = small_batch.SmallBatchConfig(hidden=20, memory_size=3)
NETS = {
    "drift baseline": lambda: drift.build_net(False, hidden=20)[0],
    **{f"drift {norm}": (lambda norm=norm: drift.build_net(True, hidden=20, norm=norm)[0]) for norm in drift.NORMS},
    **{f"small_batch {v}": (lambda v=v: small_batch.build_net(v, _SMALL)) for v in small_batch.VARIANTS},
    "adaptation base_net": lambda: adaptation.base_net(20),
    "bench conv net": _conv_net,
}


def _data(name, n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 28, 28) if "conv" in name else (n, 784))
    return x, rng.integers(0, 10, n)


def _step(model, loss_fn, opt, x, y, double_forward=False):
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    model.backward(loss_fn.backward(), need_dx=False)
    opt.step()
    if double_forward:
        train.second_forward(model, x)
    return loss


@pytest.mark.parametrize("name", list(NETS))
def test_training_step_of_each_network(device, name):
    backend.seed(0)
    cpu = NETS[name]().astype(np.float64)
    gpu = copy.deepcopy(cpu).to("gpu")
    df = name.endswith("MBN+DF")
    loss_fn, loss_fn_d = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()
    opt = optim.SGD(cpu.parameters(), lr=0.1, momentum=0.9)
    opt_d = optim.SGD(gpu.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = _data(name, seed=step)
        loss = _step(cpu, loss_fn, opt, x, y, df)
        x_d, y_d = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
        with device.watch() as seen:
            loss_d = _step(gpu, loss_fn_d, opt_d, x_d, y_d, df)
        assert seen.counts() == ZERO, seen.places()  # nothing crosses inside a training step
        assert_close(loss_d, loss, what="loss")
        assert_same_state(cpu, gpu, rtol=1e-9)


@pytest.mark.parametrize("norm", ["BN", "TransNorm"])
def test_dann_step(device, norm):
    backend.seed(0)
    cpu = adaptation.dann_net(norm, 20)
    for m in (cpu.features, cpu.classifier, cpu.domain):
        m.astype(np.float64)
    gpu = copy.deepcopy(cpu)
    for m in (gpu.features, gpu.classifier, gpu.domain):
        m.to("gpu")
    opt, opt_d = optim.SGD(cpu.parameters(), lr=0.01, momentum=0.9), optim.SGD(gpu.parameters(), lr=0.01, momentum=0.9)
    for step in range(2):
        (xs, ys), (xt, _) = _data("mlp", seed=step), _data("mlp", seed=10 + step)
        losses = cpu.step(xs, ys, xt, opt, 0.5)
        on_device = [backend.to_device(a, "gpu") for a in (xs, ys, xt)]
        with device.watch() as seen:
            losses_d = gpu.step(*on_device, opt_d, 0.5)
        assert seen.counts() == ZERO, seen.places()
        for a, b in zip(losses_d, losses):
            assert_close(a, b)
    assert_same_state(cpu.model, gpu.model, rtol=1e-9)


# -- 3. the library calls of the notebooks and experiments, on a device model ----------------------

@pytest.fixture
def trained():
    """A small trained base net of the adaptation experiment (float64, host), and target batches."""
    backend.seed(0)
    model = adaptation.base_net(20).astype(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.SoftmaxCrossEntropy()
    for step in range(5):
        _step(model, loss_fn, opt, *_data("mlp", 32, step))
    target = [0.3 * _data("mlp", 16, 100 + i)[0] + 0.5 for i in range(3)]
    return model.eval(), target


def test_adapt_on_device(device, trained):
    base, target = trained
    target_d = [backend.to_device(t, "gpu") for t in target]
    gpu = copy.deepcopy(base).to("gpu")
    probe, probe_d = target[0], target_d[0]
    assert_close(adapt.fold(gpu)(probe_d), adapt.fold(base)(probe))
    for fn in (adapt.adabn, adapt.iit, adapt.population_statistics):
        cpu_m, gpu_m = fn(copy.deepcopy(base), target), fn(copy.deepcopy(gpu), target_d)
        assert_same_state(cpu_m, gpu_m, rtol=1e-9)
        assert_close(gpu_m(probe_d), cpu_m(probe), rtol=1e-9)
    frozen, frozen_d = adapt.freeze(copy.deepcopy(base)).train(), adapt.freeze(copy.deepcopy(gpu)).train()
    assert_close(frozen_d(probe_d), frozen(probe))
    with device.watch() as seen:
        kl_d = adapt.bn_mismatch(gpu, target_d)
    kl = adapt.bn_mismatch(base, target)
    assert [r["kl"] for r in kl_d] == pytest.approx([r["kl"] for r in kl], rel=1e-9)
    # one explicit copy of each layer's KL vector, at the end (minibn/adapt.py: asnumpy(kl).mean())
    assert seen.counts() == {**ZERO, "d2h": len(kl)}


def test_gradcheck_on_device(on_gpu):
    rng = np.random.default_rng(0)
    x = backend.to_device(5 * rng.standard_normal((6, 3)) + 12, "gpu")
    rows = gradcheck.check_module(nn.BatchNorm1d(3), x)   # on the GPU: along random directions
    assert rows and all(r["passed"] for r in rows) and all("directional" in r["tensor"] for r in rows)
    for layer, shape in ((nn.LayerNorm((6, 3, 3), impl="reference"), (2, 6, 3, 3)),
                         (nn.GroupNorm(3, 6, impl="reference"), (2, 6, 3, 3)),
                         (nn.BatchNorm2d(6, impl="reference"), (2, 6, 3, 3))):
        assert all(r["passed"] for r in gradcheck.check_module(layer, backend.to_device(rng.standard_normal(shape),
                                                                                           "gpu")))
    fwd = lambda x, g, b: F.batch_norm_forward(x, g, b, 1e-5, (0,))  # noqa: E731 (notebook 02)
    inputs = {"x": x, "gamma": sd.cupy.ones(3), "beta": sd.cupy.zeros(3)}
    assert all(r["passed"] for r in gradcheck.check_function(fwd, F.batch_norm_backward, inputs))
    g = gradcheck.numerical_gradient(lambda v: float((v * v).sum()), x[:2].copy())
    assert gradcheck.rel_error(g, 2 * x[:2]) < 1e-6


def test_notebook_functional_calls_on_device(device):
    rng = np.random.default_rng(0)
    x, dy = 5 * rng.standard_normal((6, 3)) + 12, rng.standard_normal((6, 3))
    g, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, -1.0])
    x_d, dy_d, g_d, b_d = (sd.on_device(a) for a in (x, dy, g, b))
    with device.watch() as seen:
        y_d, cache_d = F.batch_norm_forward(x_d, g_d, b_d, 1e-5, (0,))
        paper_d = F.batch_norm_backward_paper(dy_d, cache_d, return_intermediates=True)
        closed_d = F.batch_norm_backward(dy_d, cache_d)
        w_d = F.memory_weights(3, 0.5, 0.9, sd.cupy)
    assert seen.counts() == ZERO
    y, cache = F.batch_norm_forward(x, g, b, 1e-5, (0,))
    paper = F.batch_norm_backward_paper(dy, cache, return_intermediates=True)
    assert_close(y_d, y)
    for a, c in zip(paper_d[:3] + tuple(paper_d[3].values()), paper[:3] + tuple(paper[3].values())):
        assert_close(a, c, rtol=1e-9)
    for a, c in zip(closed_d, F.batch_norm_backward(dy, cache)):
        assert_close(a, c, rtol=1e-9)
    assert_close(w_d, F.memory_weights(3, 0.5, 0.9, np))


def test_checkpoint_of_a_device_model(device, trained, tmp_path):
    base, target = trained
    gpu = copy.deepcopy(base).to("gpu")
    path = tmp_path / "model.npz"
    with device.watch() as seen:
        checkpoint.save(gpu, path)
    arrays = sum(isinstance(v, sd.DeviceArray) for v in gpu.state_dict().values())
    assert seen.counts() == {**ZERO, "d2h": arrays}  # one explicit copy per array
    fresh = adaptation.base_net(20).astype(np.float64).to("gpu")
    checkpoint.load(fresh, path)
    assert_same_state(base, fresh, grads=False)
    on_host = checkpoint.load(adaptation.base_net(20).astype(np.float64), path)
    assert_close(fresh.eval()(backend.to_device(target[0], "gpu")), on_host.eval()(target[0]))


def test_fit_and_evaluate_on_device(on_gpu):
    x, y = _data("mlp", 64)
    results = {}
    for where in ("numpy", "cupy"):
        backend.use(where)
        backend.seed(0)
        model = drift.build_net(True, hidden=20)[0]
        batches = BatchIterator(x, y, 16, seed=0)     # moves the data set to the active device, once
        xt, yt = backend.to_active(x), backend.to_active(y)
        loss_fn = nn.SoftmaxCrossEntropy()
        marks = []
        hist = train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.5), batches, 6,
                         eval_fn=lambda m=model, xt=xt, yt=yt, lf=loss_fn: train.evaluate(m, xt, yt, lf),
                         eval_every=3, progress=False, after_step=lambda *a: marks.append(on_gpu.total()))
        results[where] = hist.metrics
        if where == "cupy":
            # between two steps nothing crosses but, after step 3, the evaluation's three reads (the
            # loss sum, the accuracy, the loss) and, before step 5, the new epoch's permutation (h2d)
            assert np.diff(marks).tolist() == [0, 0, 3, 1, 0], on_gpu.places()
    for k in results["numpy"]:
        np.testing.assert_allclose(results["cupy"][k], results["numpy"][k], rtol=1e-5, err_msg=k)


def test_second_forward_on_device(on_gpu):
    backend.seed(0)
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.MemorizedBatchNorm1d(2, double_forward=True))
    x = backend.to_device(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32), "gpu")
    out = net(x)
    net.backward(sd.cupy.ones_like(out))
    optim.SGD(net.parameters(), lr=0.5).step()
    with on_gpu.watch() as seen:
        train.second_forward(net, x)
    assert seen.counts() == ZERO and net[1].memory_len == 1


def test_synchronize_is_a_counted_sync(on_gpu):
    backend.synchronize()
    assert on_gpu.counts() == {**ZERO, "sync": 1}


# -- known bugs (xfail until fixed) -----------------------------------------------------------------

def test_transnorm_fixed_alpha_step_has_no_transfer(on_gpu):
    tn = nn.TransNorm1d(4)
    tn.fixed_alpha = 1.0
    x = sd.cupy.asarray(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    tn(x)
    with on_gpu.watch() as seen:
        tn.backward(sd.cupy.ones_like(tn(x)))
    assert seen.counts() == ZERO, seen.places()


def test_load_state_dict_device_to_device_stays_on_the_device(on_gpu):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    state = copy.deepcopy(model.state_dict())
    with on_gpu.watch() as seen:
        model.load_state_dict(state)
    assert seen.counts() == ZERO, seen.places()


def test_batch_iterator_keeps_device_data_on_the_device(device):
    x, y = (backend.to_device(a, "gpu") for a in _data("mlp", 32))
    xb, yb = next(BatchIterator(x, y, 8))
    assert backend.is_gpu_array(xb) and backend.is_gpu_array(yb)


def test_activation_recorder_has_no_implicit_conversion(on_gpu):
    backend.seed(0)
    model, sig = drift.build_net(True, hidden=20)
    recorder = train.ActivationRecorder(model, sig, [0, 3], backend.to_device(_data("mlp", 50)[0], "gpu"))
    with on_gpu.watch() as seen:
        recorder(0)
    assert recorder.values.shape == (1, 2, 3)
    assert seen.counts() == {**ZERO, "d2h": 1}, seen.places()  # the percentiles, once, explicitly


def test_out_of_range_labels_are_not_silently_wrapped_on_the_device(on_gpu):
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(sd.cupy.zeros((3, 4)), sd.cupy.asarray(np.array([0, 5, 1])))
    assert np.isnan(float(loss))


def _mpi():
    from minibn import distributed
    if not distributed.available():
        pytest.skip("mpi4py is not installed")
    return distributed


def test_sharded_batches_make_no_transfer_per_step(on_gpu):
    distributed = _mpi()
    x, y = _data("mlp", 64)
    batches = distributed.ShardedBatches(x, y, 16, distributed.single())
    next(batches)
    with on_gpu.watch() as seen:
        next(batches)
    assert seen.counts() == ZERO, seen.places()


def test_data_parallel_step_makes_one_round_trip(on_gpu):
    distributed = _mpi()
    backend.seed(0)
    model = distributed.DataParallel(drift.build_net(True, hidden=20)[0], distributed.single())
    loss_fn, opt = nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1)
    x, y = (backend.to_device(a, "gpu") for a in _data("mlp", 8))
    _step(model, loss_fn, opt, x, y)
    with on_gpu.watch() as seen:
        _step(model, loss_fn, opt, x, y)
    assert seen.counts() == {**ZERO, "h2d": 1, "d2h": 1}, seen.places()


def test_sync_batchnorm_step_transfers_are_its_exchanges(on_gpu):
    """Listed, not a bug: SyncBatchNorm's communicator (mpi4py) exchanges host buffers, so each
    training step on the GPU copies the moments down and back (forward) and the two sums (backward)."""
    distributed = _mpi()
    comm = distributed.single()
    model = nn.Sequential(nn.Linear(784, 20, bias=False), nn.SyncBatchNorm(20, comm=comm), nn.ReLU(), nn.Linear(20, 10))
    loss_fn, opt = nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1)
    x, y = (backend.to_device(a, "gpu") for a in _data("mlp", 8))
    _step(model, loss_fn, opt, x, y)
    with on_gpu.watch() as seen:
        _step(model, loss_fn, opt, x, y)
    assert seen.counts() == {**ZERO, "h2d": 3, "d2h": 3}, seen.places()


def test_mnist_fig1_mlp_step_on_device(on_gpu, mnist_dir):
    """The Fig. 1 MLP on a real MNIST batch (skipped without MINIBN_DATA)."""
    from minibn.data import load_mnist
    (x, y), _ = load_mnist(root=mnist_dir, progress=False)
    backend.seed(0)
    model = drift.build_net(True)[0]
    loss_fn, opt = nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.5)
    batches = BatchIterator(x[:600], y[:600], 60, seed=0)
    _step(model, loss_fn, opt, *next(batches))
    with on_gpu.watch() as seen:
        loss = _step(model, loss_fn, opt, *next(batches))
    assert seen.counts() == ZERO, seen.places()
    assert 0 < float(loss) < 10 and os.fspath(mnist_dir)
    assert mb.get_array_module(loss) is sd.cupy


def test_a_float64_input_on_the_device_gives_gradients_in_the_parameters_dtype(device):
    """Parameter.accumulate converts a float64 gradient to a float32 parameter's dtype: on the
    device too, without a transfer (Linear writes dW into its kept float32 buffer, Conv2d's comes
    back float64 and is converted; the bias gradients are float64 sums)."""
    rng = np.random.default_rng(0)
    for layer, shape in ((nn.Linear(4, 3), (5, 4)), (nn.Conv2d(2, 3, 3), (2, 2, 5, 5))):
        layer = layer.to("gpu")
        opt = optim.SGD(layer.parameters(), lr=0.1)
        x = backend.to_device(rng.standard_normal(shape), "gpu")
        y_shape = layer(x).shape
        dy = backend.to_device(rng.standard_normal(y_shape), "gpu")
        with device.watch() as seen:
            y = layer(x)
            layer.backward(dy)
            opt.step()
        assert seen.counts() == ZERO, seen.places()
        assert y.dtype == np.float64
        for p in layer.parameters():
            assert isinstance(p.grad, sd.DeviceArray) and p.grad.dtype == np.float32, type(layer).__name__
            assert isinstance(p.data, sd.DeviceArray) and p.data.dtype == np.float32
