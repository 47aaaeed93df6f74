"""Checks run on every rank under mpiexec (tests/test_distributed.py launches them).

    mpiexec -n 4 python tests/mpi/checks.py equivalence   # SyncBN and data parallelism = one process
    mpiexec -n 2 python tests/mpi/checks.py missized      # one rank's input has the wrong shape
    mpiexec -n 2 python tests/mpi/checks.py silent        # one rank never joins a collective
    mpiexec -n 2 python tests/mpi/checks.py agree         # the ranks' configurations, the global loss

Every rank builds the same global data (same seeds), keeps its part, and compares with the
single-process result it computes itself. Any failure raises, and ``abort_on_error`` ends
the whole job with a non-zero exit; each collective has a timeout. Rank 0 prints one
"ok <check>" line per check passed.
"""

import sys
import time

import numpy as np

from minibn import distributed, nn, optim

TIMEOUT = 30.0
comm = distributed.world(timeout=TIMEOUT)
k, rank = comm.size, comm.rank


def ok(name):
    comm.barrier()
    if rank == 0:
        print(f"ok {name}", flush=True)


def parts(total, sizes):
    """(lo, hi) of each rank's rows."""
    bounds = np.cumsum([0] + list(sizes))
    assert bounds[-1] == total
    return int(bounds[rank]), int(bounds[rank + 1])


def close(a, b, what, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol, err_msg=f"rank {rank}: {what}")


def syncbn_equals_bn():
    r = np.random.default_rng(0)
    for shape_tail in [(4,), (3, 2, 2)]:
        for sizes in ([3] * k, [1 + i for i in range(k)] if k > 1 else [5]):  # equal and unequal parts
            N = sum(sizes)
            x = 5 * r.standard_normal((N,) + shape_tail) + 12
            dy = r.standard_normal(x.shape)
            C = shape_tail[0]
            gamma, beta = r.uniform(0.5, 1.5, C), r.standard_normal(C)
            lo, hi = parts(N, sizes)

            ref = nn.BatchNorm1d(C, dtype="float64") if len(shape_tail) == 1 else nn.BatchNorm2d(C, dtype="float64")
            syn = nn.SyncBatchNorm(C, comm=comm, dtype="float64")
            for layer in (ref, syn):
                layer.gamma.data[...], layer.beta.data[...] = gamma, beta
            for step in range(3):
                xs, dys = x + step, dy * (step + 1)
                y_ref = ref(xs)
                dx_ref = ref.backward(dys)
                syn.zero_grad()
                y = syn(xs[lo:hi])
                dx = syn.backward(dys[lo:hi])
                what = f"shape {x.shape}, sizes {sizes}, step {step}"
                close(y, y_ref[lo:hi], f"y, {what}")
                close(dx, dx_ref[lo:hi], f"dx, {what}")
                close(comm.allreduce_sum(syn.gamma.grad), ref.gamma.grad, f"dgamma summed over ranks, {what}")
                close(comm.allreduce_sum(syn.beta.grad), ref.beta.grad, f"dbeta summed over ranks, {what}")
                ref.zero_grad()
                close(syn.running_mean, ref.running_mean, f"running_mean, {what}")
                close(syn.running_var, ref.running_var, f"running_var, {what}")
                everyone = comm.allgather(np.concatenate([syn.running_mean, syn.running_var]))
                assert (everyone == everyone[0]).all(), f"running statistics differ between ranks, {what}"
    ok("syncbn_equals_bn")


def syncbn_gradcheck():
    """Central differences of J = sum over all ranks of <y_r, dy_r> with respect to each
    rank's input, gamma and beta (gamma's and beta's gradient: the sum of the ranks' parts)."""
    r = np.random.default_rng(1)
    sizes = [2 + (i % 2) for i in range(k)]
    N, C = sum(sizes), 3
    x, dy = 3 * r.standard_normal((N, C)) + 2, r.standard_normal((N, C))
    lo, hi = parts(N, sizes)
    layer = nn.SyncBatchNorm(C, comm=comm, dtype="float64")
    layer.gamma.data[...] = r.uniform(0.5, 1.5, C)
    layer.beta.data[...] = r.standard_normal(C)

    def J(xs):
        with layer.mode(training=True):
            saved = (layer.running_mean.copy(), layer.running_var.copy(), layer.num_batches_tracked)
            y = layer(xs[lo:hi])
            layer.running_mean, layer.running_var, layer.num_batches_tracked = saved
        return float(comm.allreduce_sum(np.array([(y * dy[lo:hi]).sum()]))[0])

    layer.zero_grad()
    layer(x[lo:hi])
    dx = layer.backward(dy[lo:hi])
    grads = {"x": comm.allgather(np.pad(dx, ((0, max(sizes) - (hi - lo)), (0, 0))))}
    h = 1e-6
    for q in range(k):  # every rank's input, element by element (all ranks run each forward)
        qlo = sum(sizes[:q])
        for i in range(sizes[q]):
            for c in range(C):
                xp, xm = x.copy(), x.copy()
                xp[qlo + i, c] += h
                xm[qlo + i, c] -= h
                num = (J(xp) - J(xm)) / (2 * h)
                close(grads["x"][q, i, c], num, f"dx of rank {q} [{i}, {c}]", tol=1e-6)
    for name in ("gamma", "beta"):
        p = getattr(layer, name)
        total = comm.allreduce_sum(p.grad)
        for c in range(C):
            p.data[c] += h
            jp = J(x)
            p.data[c] -= 2 * h
            jm = J(x)
            p.data[c] += h
            close(total[c], (jp - jm) / (2 * h), f"d{name}[{c}]", tol=1e-6)
    ok("syncbn_gradcheck")


def mlp(sync, seed=0):
    r = np.random.default_rng(seed)
    layers = []
    width = 6
    for _ in range(2):
        lin = nn.Linear(width, 5, bias=not sync).astype(np.float64)
        lin.weight.data[...] = r.standard_normal(lin.weight.shape) * 0.5
        if lin.bias is not None:
            lin.bias.data[...] = r.standard_normal(lin.bias.shape) * 0.1
        layers.append(lin)
        if sync == "sync":
            layers.append(nn.SyncBatchNorm(5, comm=comm, dtype="float64"))
        elif sync == "bn":
            layers.append(nn.BatchNorm1d(5, dtype="float64"))
        layers.append(nn.Tanh())
        width = 5
    head = nn.Linear(width, 3).astype(np.float64)
    head.weight.data[...], head.bias.data[...] = r.standard_normal(head.weight.shape), r.standard_normal(3)
    layers.append(head)
    return nn.Sequential(*layers)


def data_parallel_equals_one_process():
    r = np.random.default_rng(2)
    X, Y = r.standard_normal((200, 6)), r.integers(0, 3, 200)
    for norm, ref_norm in ((None, None), ("sync", "bn")):
        for global_batch in (3 * k, 2 * k + 1):  # equal and unequal parts
            model = distributed.DataParallel(mlp(norm, seed=10 + rank), comm)  # rank 0's weights win
            ref = mlp(ref_norm, seed=10)
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            ref_opt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
            loss, ref_loss = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()
            shards = distributed.ShardedBatches(X, Y, global_batch, comm, seed=3)
            from minibn.data import BatchIterator
            whole = BatchIterator(X, Y, global_batch, seed=3)
            for step in range(4):
                (x, y), (xa, ya) = next(shards), next(whole)
                loss(model(x), y)
                opt.zero_grad()
                model.backward(loss.backward(), need_dx=False)
                opt.step()
                ref_loss(ref(xa), ya)
                ref_opt.zero_grad()
                ref.backward(ref_loss.backward(), need_dx=False)
                ref_opt.step()
                for (name, p), q in zip(model.named_parameters(), ref.parameters()):
                    close(p.data, q.data, f"{name} after step {step}, norm {norm}, global batch {global_batch}")
                for (name, b), (_, rb) in zip(model.named_buffers(), ref.named_buffers()):
                    close(b, rb, f"{name} after step {step}")
    ok("data_parallel_equals_one_process")


def empty_rank_is_an_error_everywhere():
    layer = nn.SyncBatchNorm(3, comm=comm, dtype="float64")
    x = np.ones((0 if rank == k - 1 else 2, 3))
    try:
        layer(x)
    except ValueError as e:
        assert f"rank(s) [{k - 1}]" in str(e) and "no samples" in str(e), e
    else:
        raise AssertionError("an empty rank was not refused")
    one = np.ones((1 if rank == 0 else 0, 3))
    try:
        layer(one)
    except ValueError as e:
        assert "no samples" in str(e) or "more than 1 value" in str(e), e
    else:
        raise AssertionError("a batch of one value per channel was not refused")
    ok("empty_rank_is_an_error_everywhere")


def configs_must_agree():
    """check_same_config: silent when every rank has the same settings; otherwise the same
    error on every rank, naming each setting that differs and its value on each rank."""
    same = {"steps": 40, "seed": 0, "lr": 0.5, "norm": "batchnorm", "nets": ["baseline", "bn"]}
    distributed.check_same_config(comm, same)
    mine = dict(same, steps=50 if rank == k - 1 else 40)  # the last rank was started with another --steps
    if rank == 0:
        mine["extra"] = 1  # a setting the others do not have (another version of minibn)
    try:
        distributed.check_same_config(comm, mine)
    except ValueError as e:
        text = str(e)
        assert f"steps: 40 on rank{'s' if k > 2 else ''} {', '.join(map(str, range(k - 1)))}, 50 on rank {k - 1}" \
            in text, text
        assert "extra: 1 on rank 0, (not set) on rank" in text and "lr" not in text, text
        everyone = comm.allgather_bytes(text.encode())
        assert all(t == everyone[0] for t in everyone), "the ranks report different errors"
    else:
        raise AssertionError("different configurations were not refused")
    lengths = comm.allgather_bytes(b"x" * (3 + 5 * rank))  # bytes of different lengths, in rank order
    assert lengths == [b"x" * (3 + 5 * r) for r in range(k)], lengths
    ok("configs_must_agree")


def global_loss_equals_one_process():
    """fit records the loss of the whole batch on every rank of a data-parallel run, as one
    process training on the whole batch records it (the ranks' parts summed per row)."""
    from minibn.data import BatchIterator
    from minibn.train import fit
    r = np.random.default_rng(5)
    X, Y = r.standard_normal((120, 6)), r.integers(0, 3, 120)
    for norm, ref_norm in ((None, None), ("sync", "bn")):
        global_batch = 2 * k + 1  # unequal parts: the per-row weighting matters
        model = distributed.DataParallel(mlp(norm, seed=20), comm)
        ref = mlp(ref_norm, seed=20)
        runs = []
        for net, batches in ((model, distributed.ShardedBatches(X, Y, global_batch, comm, seed=6)),
                             (ref, BatchIterator(X, Y, global_batch, seed=6))):
            opt = optim.SGD(net.parameters(), lr=0.1)
            runs.append(fit(net, nn.SoftmaxCrossEntropy(), opt, batches, 9, eval_every=4, progress=False))
        parallel, one = (h.metrics["train_loss"] for h in runs)
        assert runs[0].eval_steps == runs[1].eval_steps == [0, 4, 8, 9]
        close(parallel[1:], one[1:], f"train_loss, norm {norm}")
    ok("global_loss_equals_one_process")


def main(which):
    with distributed.abort_on_error(comm):
        if which == "equivalence":
            syncbn_equals_bn()
            syncbn_gradcheck()
            data_parallel_equals_one_process()
            empty_rank_is_an_error_everywhere()
        elif which == "agree":
            configs_must_agree()
            global_loss_equals_one_process()
        elif which == "missized":  # rank 1 gives 4 channels to a 3-channel layer
            layer = nn.SyncBatchNorm(3, comm=comm, dtype="float64")
            layer(np.ones((2, 4 if rank == 1 else 3)) + np.arange(2)[:, None])
        elif which == "silent":  # rank 1 never joins: the others time out
            if rank == 1:
                time.sleep(60)
            else:
                distributed.Communicator(comm.comm, timeout=1.0).allreduce_sum(np.ones(3))
        else:
            raise SystemExit(f"unknown check {which!r}")


if __name__ == "__main__":
    main(sys.argv[1])
