"""Issue 17: reliability. What a red-team run found, pinned as behaviour: checkpoints that
survive killed saves and hostile files, values that never enter a model silently wrong, and
one meaning for options on every backend. Each test says which defect of the issue it pins
(``#n``); the error cases are also in the bad-input catalogue (test_bad_input.py)."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn, ops, optim
from d2lparams import io as d2p_io

from conftest import other_backend_tensor, run_python, write_safetensors

posix_only = pytest.mark.skipif(os.name != "posix", reason="signals, pids and modes are POSIX's")

#: (backend, behaviour) -> what the adapter must change. Such a test is a strict xfail on that
#: backend: it is reported with this reason, and fails as soon as the adapter is fixed (then
#: delete the entry).
ADAPTER_GAPS = {
}


def adapter_gap(request, backend, behaviour):
    reason = ADAPTER_GAPS.get((backend, behaviour))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def states_equal(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- #1 the reserved name ------------------------------------------------------------------------

def test_reserved_metadata_name_never_replaces_a_good_checkpoint(backend, tmp_path):
    net = nn.mlp(2, 3, 1)
    path = d2p.save(net, tmp_path / "net.safetensors")
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="reserve"):
        net.register_buffer("__metadata__", np.ones(2))
    with pytest.raises(ValueError, match="reserves that header key"):
        d2p.save({"__metadata__": np.ones(2), "w": np.ones(2)}, path)
    assert open(path, "rb").read() == before
    twin = d2p.load(nn.mlp(2, 3, 1), path)  # still readable
    states_equal(twin.state_dict(), net.state_dict())


# -- #2 0-d tensors ------------------------------------------------------------------------------

class Scaled(nn.Module):
    """A Linear scaled by a learnt 0-d parameter, with a 0-d buffer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.scale = nn.Parameter(np.float32(1.0))
        self.register_buffer("steps", np.float32(0.0))

    def forward(self, X):
        return self.lin(X) * self.scale


def test_zero_dim_parameters_and_buffers_keep_their_shape_through_save_and_load(backend, tmp_path, request):
    adapter_gap(request, backend, "0-d")
    net = Scaled()
    assert net.scale.shape == ()
    net.scale.set(np.float32(2.5))
    net.register_buffer("steps", np.float32(7.0))
    sd = net.state_dict()
    assert sd["scale"].shape == () and sd["steps"].shape == ()
    twin = d2p.load(Scaled(), d2p.save(net, tmp_path / "scaled.safetensors"))
    states_equal(twin.state_dict(), sd)
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    expected = (X @ sd["lin.weight"] + sd["lin.bias"]) * 2.5
    np.testing.assert_allclose(d2p.to_numpy(twin(X)), expected, rtol=1e-6, atol=1e-6)


def test_zero_dim_tensors_are_stored_zero_dim(tmp_path):
    path = d2p.save({"s": np.float32(3.5), "v": np.arange(3)}, tmp_path / "s.safetensors")
    raw = open(path, "rb").read()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["s"]["shape"] == [] and header["v"]["shape"] == [3]
    state, _ = d2p_io.read(path)
    assert state["s"].shape == () and float(state["s"]) == 3.5


# -- #3 ties -------------------------------------------------------------------------------------

def tied_net():
    shared = nn.Linear(4, 4)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), shared, nn.ReLU(), shared)


def untied_net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))


def test_tied_names_load_equal_values_and_refuse_different_ones(backend, tmp_path):
    net = tied_net()
    rng = np.random.default_rng(0)
    new = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in net.state_dict().items()}
    for name in ("weight", "bias"):
        new[f"4.{name}"] = new[f"2.{name}"].copy()
    net.load_state_dict(new)
    states_equal(net.state_dict(), new)

    different = {**new, "4.weight": new["2.weight"] + 1}
    with pytest.raises(d2p.StateDictError, match=r"2\.weight and 4\.weight name one parameter") as info:
        net.load_state_dict(different)
    assert info.value.conflicting == [["2.weight", "4.weight"]]
    assert "largest difference 1" in str(info.value)
    states_equal(net.state_dict(), new)

    untied = untied_net()
    with pytest.raises(d2p.StateDictError, match="tied"):
        d2p.load(net, d2p.save(untied, tmp_path / "untied.safetensors"))
    states_equal(net.state_dict(), new)

    # the other way round: a tied checkpoint gives both places of an untied net its values
    d2p.load(untied, d2p.save(net, tmp_path / "tied.safetensors"))
    states_equal(untied.state_dict(), new)

    # one name of the tie is enough with strict=False, and it sets the tie
    net.load_state_dict({"2.weight": new["2.weight"] * 2}, strict=False)
    np.testing.assert_array_equal(net.state_dict()["4.weight"], new["2.weight"] * 2)


# -- #4 finite values, on every write path -------------------------------------------------------

BAD_VALUES = [("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf), ("overflow", 1e39)]


@pytest.mark.parametrize("label, bad", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_load_and_set_agree_on_non_finite_values(backend, label, bad):
    net = nn.mlp(4, 8, 1)
    before = net.state_dict()
    state = {k: v.astype(np.float64) for k, v in before.items()}
    state["0.bias"][3] = bad
    with pytest.raises(d2p.StateDictError, match=r"0\.bias: 1 of 8 entries are NaN/inf") as info:
        net.load_state_dict(state)
    assert list(info.value.invalid) == ["0.bias"]
    with pytest.raises(ValueError, match="NaN or inf"):
        net[0].bias.set(state["0.bias"])
    states_equal(net.state_dict(), before)

    net.load_state_dict(state, allow_nonfinite=True)
    with np.errstate(over="ignore"):
        expected = {k: v.astype(np.float32) for k, v in state.items()}  # 1e39 becomes inf
    states_equal(net.state_dict(), expected)


def test_a_checkpoint_with_non_finite_values_loads_only_when_allowed(backend, tmp_path):
    source = nn.mlp(4, 8, 1)
    diverged = {**source.state_dict(), "2.weight": np.array([[np.nan], [np.inf]] * 4, np.float32)}
    path = d2p.save(diverged, tmp_path / "diverged.safetensors")  # saving keeps what is there
    net = nn.mlp(4, 8, 1)
    before = net.state_dict()
    with pytest.raises(d2p.StateDictError, match=r"2\.weight: 8 of 8 .*allow_nonfinite=True"):
        d2p.load(net, path)
    states_equal(net.state_dict(), before)
    d2p.load(net, path, allow_nonfinite=True)
    states_equal(net.state_dict(), diverged)


def test_complex_values_are_never_dropped_silently(backend, tmp_path):
    net = nn.mlp(4, 8, 1)
    before = net.state_dict()
    state = {**before, "0.weight": before["0.weight"] + 0j}  # even a zero imaginary part
    for allow in (False, True):
        with pytest.raises(d2p.StateDictError, match=r"0\.weight: complex values"):
            net.load_state_dict(state, allow_nonfinite=allow)
    with pytest.raises(ValueError, match="complex"):
        net[0].weight.set(state["0.weight"])
    with pytest.raises(ValueError, match="complex"):
        d2p.save(state, tmp_path / "complex.safetensors")
    assert not os.listdir(tmp_path)
    states_equal(net.state_dict(), before)


# -- #5 init arguments ---------------------------------------------------------------------------

INIT_CASES = [
    ("constant_", {"value": np.nan}), ("constant_", {"value": np.inf}), ("constant_", {"value": 1e39}),
    ("normal_", {"mean": np.inf}), ("normal_", {"std": np.nan}), ("normal_", {"mean": 3e38, "std": 1e37}),
    ("uniform_", {"a": -np.inf, "b": 0.0}), ("uniform_", {"a": 0.0, "b": np.nan}),
    ("uniform_", {"a": -3e38, "b": 3e38}),
    ("xavier_uniform_", {"gain": np.nan}), ("xavier_normal_", {"gain": np.inf}),
    ("kaiming_uniform_", {"a": np.nan}), ("kaiming_normal_", {"a": -np.inf}),
]


@pytest.mark.parametrize("native", [False, True], ids=["portable", "native"])
@pytest.mark.parametrize("fn, kwargs", INIT_CASES, ids=[f"{f}{k}" for f, k in INIT_CASES])
def test_init_refuses_arguments_a_parameter_cannot_hold(backend, fn, kwargs, native):
    p = nn.Linear(4, 3).weight
    before = p.numpy()
    with pytest.raises(ValueError, match=r"must be a finite number|beyond float32's range"):
        getattr(init, fn)(p, **kwargs, native=native)
    np.testing.assert_array_equal(p.numpy(), before)


# -- #6 and #13 optimizer options: finite, NumPy numbers welcome ----------------------------------

def test_sgd_with_numpy_numbers_steps_like_numpy_and_its_state_is_checked(backend):
    net = nn.Linear(2, 1, weight_init=0.5, bias_init=0.0)
    X = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    opt = optim.SGD(net.parameters(), lr=np.float32(0.1), momentum=np.float64(0.9),
                    weight_decay=np.int64(0))
    w0 = net.weight.numpy()
    grad = X.sum(axis=0)[:, None]  # d sum(X @ W + b) / dW
    for _ in range(2):
        net.zero_grad()
        d2p.backward(lambda: ops.sum(net(X)))
        opt.step()
    lr = float(np.float32(0.1))
    expected = w0 - lr * grad - lr * (0.9 * grad + grad)  # buffers g, then 0.9·g + g
    np.testing.assert_allclose(net.weight.numpy(), expected, rtol=1e-6)

    good = opt.state_dict()
    bad_states = [
        {**good, "param_groups": [{**good["param_groups"][0], "lr": -1.0}]},
        {**good, "param_groups": [{**good["param_groups"][0], "beta": 0.9}]},
        {**good, "param_groups": [{**good["param_groups"][0], "momentum": np.inf}]},
        {**good, "state": {0: {"momentum_buffer": np.full((2, 1), np.nan)}}},
        {**good, "state": {7: {"momentum_buffer": np.zeros((2, 1))}}},
        {**good, "extra": 1},
    ]
    for bad in bad_states:
        with pytest.raises(d2p.StateDictError, match="nothing was loaded"):
            opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == good["param_groups"]
    for i, entry in good["state"].items():
        np.testing.assert_array_equal(after["state"][i]["momentum_buffer"], entry["momentum_buffer"])
    opt.load_state_dict(good)
    before_step = net.weight.numpy()
    opt.step()  # the restored buffers continue the trajectory: 0.9·(1.9·g) + g
    np.testing.assert_allclose(net.weight.numpy(), before_step - lr * (0.9 * 1.9 * grad + grad), rtol=1e-5)


def test_numpy_numbers_are_numbers_everywhere(backend):
    net = nn.mlp(np.int64(4), np.array([8, 8]), np.int32(2))
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [8, 8, 2]
    drop = nn.Dropout(np.float32(0.5)).eval()
    np.testing.assert_array_equal(d2p.to_numpy(drop(np.ones((1, 3), np.float32))), np.ones((1, 3)))
    bn = nn.BatchNorm1d(np.int64(3), eps=np.float32(1e-3), momentum=np.float64(0.2))
    assert (bn.eps, bn.momentum) == (float(np.float32(1e-3)), 0.2)
    assert nn.Softmax(dim=np.int64(-1)).extra_repr() == "dim=-1"
    lin = nn.Linear(2, 3, weight_init=np.float32(0.25))
    np.testing.assert_array_equal(lin.weight.numpy(), np.full((2, 3), 0.25, np.float32))
    init.normal_(lin.weight, mean=np.float32(1.0), std=np.float64(0.0))
    np.testing.assert_array_equal(lin.weight.numpy(), np.ones((2, 3), np.float32))

    opt = optim.SGD(lin.parameters(), lr=0.1)
    sched = optim.lr_scheduler.MultiStepLR(opt, milestones=np.array([2, 4]), gamma=np.float32(0.5))
    lrs = []
    for _ in range(6):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    gamma = float(np.float32(0.5))
    np.testing.assert_allclose(lrs, [0.1 * gamma ** int(np.searchsorted([2, 4], e, "right")) for e in range(6)])
    sched.load_state_dict(sched.state_dict())
    assert sched.get_last_lr() == pytest.approx([0.1 * gamma ** 2])


# -- #7 dtypes in checkpoints ---------------------------------------------------------------------

VALUES = np.array([1.0, -2.0, 0.5, 1.5, 448.0, -1.0, 2.0**-9, 0.0, 2.0], np.float32)  # exact in all
E4M3 = {1.0: 0x38, -2.0: 0xC0, 0.5: 0x30, 1.5: 0x3C, 448.0: 0x7E, -1.0: 0xB8, 2.0**-9: 0x01, 0.0: 0x00, 2.0: 0x40}
ENCODE = {  # float32 values -> the bytes of each stored dtype (data written by hand)
    "F32": lambda v: v.astype("<f4").tobytes(),
    "F64": lambda v: v.astype("<f8").tobytes(),
    "F16": lambda v: v.astype("<f2").tobytes(),
    "BF16": lambda v: (v.view(np.uint32) >> 16).astype("<u2").tobytes(),
    "F8_E5M2": lambda v: (v.astype(np.float16).view(np.uint16) >> 8).astype(np.uint8).tobytes(),
    "F8_E4M3": lambda v: bytes(E4M3[float(x)] for x in v.ravel()),
}
NAMES = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16",
         "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn"}


@pytest.mark.parametrize("dtype", list(ENCODE))
def test_checkpoint_dtypes_load_with_cast_and_are_named_without(backend, tmp_path, dtype):
    weight, bias = VALUES[:6].reshape(2, 3), VALUES[6:]
    path = write_safetensors(tmp_path / "w.safetensors", {
        "weight": (dtype, [2, 3], ENCODE[dtype](weight)), "bias": (dtype, [3], ENCODE[dtype](bias))})
    net = nn.Linear(2, 3)
    before = net.state_dict()
    if dtype != "F32":
        with pytest.raises(d2p.StateDictError, match=rf"weight: stored as {NAMES[dtype]}.*cast=True"):
            d2p.load(net, path)
        states_equal(net.state_dict(), before)
    d2p.load(net, path, cast=True)
    states_equal(net.state_dict(), {"weight": weight, "bias": bias})


def test_a_float64_checkpoint_beyond_float32_is_refused_even_with_cast(backend, tmp_path):
    bias = np.array([1.0, 1e39, -2.0])
    path = write_safetensors(tmp_path / "big.safetensors", {
        "weight": ("F64", [2, 3], np.ones((2, 3)).astype("<f8").tobytes()),
        "bias": ("F64", [3], bias.astype("<f8").tobytes())})
    net = nn.Linear(2, 3)
    before = net.state_dict()
    with pytest.raises(d2p.StateDictError, match=r"bias: 1 of 3 entries are NaN/inf or beyond float32's range"):
        d2p.load(net, path, cast=True)
    states_equal(net.state_dict(), before)


def test_unknown_dtypes_are_state_dict_errors(tmp_path):
    path = write_safetensors(tmp_path / "c.safetensors", {"w": ("C64", [1], b"\0" * 8)})
    with pytest.raises(d2p.StateDictError, match=r"dtype 'C64', which d2lparams does not read"):
        d2p_io.read(path)


# -- #8 metadata ---------------------------------------------------------------------------------

MALFORMED = [
    ({"order": "[1,"}, r"'order' \(not JSON"),
    ({"order": '{"a": 1}'}, r"'order': expected a list of names"),
    ({"order": '["w", "w"]'}, r"'order': a name is listed twice"),
    ({"order": '["w", "x"]'}, r"lacks the tensor\(s\) \['x'\]"),
    ({"order": "[]"}, r"'order': the file stores \['w'\], which it does not list"),
    ({"tied": "[[1, 2]]"}, r"'tied': expected a list of groups"),
    ({"tied": '[["w"]]'}, r"'tied': expected a list of groups of two or more names"),
    ({"tied": '[["x", "w"]]'}, r"starts with 'x', which the file does not store"),
    ({"tied": '[["w", "v"], ["w", "u"]]'}, r"'w' is in two groups"),
    ({"tied": "nul"}, r"'tied' \(not JSON"),
]


@pytest.mark.parametrize("change, message", MALFORMED, ids=[str(c) for c, _ in MALFORMED])
def test_malformed_metadata_is_a_state_dict_error(tmp_path, change, message):
    meta = {"format": "d2lparams", "format_version": "1", "layout": "canonical",
            "order": '["w"]', "tied": "[]", **change}
    path = write_safetensors(tmp_path / "m.safetensors", {"w": ("F32", [2], b"\0" * 8)}, metadata=meta)
    with pytest.raises(d2p.StateDictError, match=message):
        d2p_io.read(path)


# -- #9 temporary files --------------------------------------------------------------------------

SLOW_SAVE = r"""
import os, sys, time, numpy as np, d2lparams as d2p
def stuck_fsync(fd):  # the save is now mid-flight: its temporary file exists
    print("writing", flush=True)
    time.sleep(600)
os.fsync = stuck_fsync
d2p.save({"w": np.full(1000, 2.0)}, sys.argv[1])
"""


def interrupted_save(path, sig):
    """Start a save in another process, and send ``sig`` while its temporary file exists."""
    child = subprocess.Popen([sys.executable, "-P", "-c", SLOW_SAVE, str(path)], stdout=subprocess.PIPE,
                             text=True, stdin=subprocess.DEVNULL)
    try:
        assert child.stdout.readline().strip() == "writing"
        temporaries = [n for n in os.listdir(path.parent) if n.startswith(".d2lparams-")]
        child.send_signal(sig)
        child.wait(timeout=120)
    finally:
        child.kill()
        child.stdout.close()
    return child.returncode, temporaries


@posix_only
def test_sigterm_during_a_save_removes_its_temporary_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "net.safetensors"
    d2p.save({"w": np.ones(1000)}, path)
    before = path.read_bytes()
    code, during = interrupted_save(path, signal.SIGTERM)
    assert code == -signal.SIGTERM  # terminated as SIGTERM's default does
    assert len(during) == 1 and str(os.getpid()) not in during[0]
    assert sorted(os.listdir(tmp_path)) == ["net.safetensors"]
    assert path.read_bytes() == before


@posix_only
def test_a_killed_save_is_cleaned_up_by_the_next_save_into_the_directory(tmp_path):
    path = tmp_path / "net.safetensors"
    d2p.save({"w": np.ones(1000)}, path)
    before = path.read_bytes()
    code, during = interrupted_save(path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == sorted(["net.safetensors", *during]) and len(during) == 1
    assert path.read_bytes() == before
    d2p.save({"w": np.zeros(3)}, tmp_path / "other.safetensors")  # any save into the directory
    assert sorted(os.listdir(tmp_path)) == ["net.safetensors", "other.safetensors"]


@posix_only
def test_only_provably_stale_temporary_files_are_removed(tmp_path):
    tag = d2p_io._host_tag()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        names = {
            "writer gone": f".d2lparams-{tag}-{gone.pid}-{'0' * 16}.tmp",
            "this process, not saving": f".d2lparams-{tag}-{os.getpid()}-{'1' * 16}.tmp",
            "writer alive": f".d2lparams-{tag}-{alive.pid}-{'2' * 16}.tmp",
            "another host or container": f".d2lparams-{'f' * 8}-{gone.pid}-{'3' * 16}.tmp",
            "older naming (no pid)": ".d2lparams-k2j4h5g6.tmp",
            "not a d2lparams name": f".d2lparams-{tag}-{gone.pid}.tmp.bak",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        os.mkdir(tmp_path / f".d2lparams-{tag}-{gone.pid}-{'4' * 16}.tmp")  # not a regular file
        d2p.save({"w": np.ones(2)}, tmp_path / "net.safetensors")
        left = set(os.listdir(tmp_path))
    finally:
        alive.kill()
        alive.wait()
    removed = {label for label, name in names.items() if name not in left}
    assert removed == {"writer gone", "this process, not saving"}
    assert f".d2lparams-{tag}-{gone.pid}-{'4' * 16}.tmp" in left


@posix_only
def test_a_save_in_flight_in_another_thread_keeps_its_temporary_file(tmp_path):
    """Two threads of one process save into one directory: the one that starts second must
    not take the first one's temporary file for a stale one."""
    first_writing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync
    done = []

    def held_fsync(fd):
        if threading.current_thread().name == "first":
            first_writing.set()
            release.wait(60)
        real_fsync(fd)

    def first():
        d2p.save({"w": np.full(4, 1.0)}, tmp_path / "first.safetensors")
        done.append(True)

    os.fsync = held_fsync
    try:
        thread = threading.Thread(target=first, name="first")
        thread.start()
        assert first_writing.wait(60)
        d2p.save({"w": np.full(4, 2.0)}, tmp_path / "second.safetensors")
        assert len([n for n in os.listdir(tmp_path) if n.startswith(".d2lparams-")]) == 1
        release.set()
        thread.join(60)
    finally:
        os.fsync = real_fsync
        release.set()
    assert done == [True]
    assert sorted(os.listdir(tmp_path)) == ["first.safetensors", "second.safetensors"]
    np.testing.assert_array_equal(d2p_io.read(tmp_path / "first.safetensors")[0]["w"], np.ones(4))


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "net.safetensors"
    d2p.save({"w": np.ones(3)}, path)
    before = path.read_bytes()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        d2p.save({"w": np.zeros(3)}, path)
    assert sorted(os.listdir(tmp_path)) == ["net.safetensors"]
    assert path.read_bytes() == before


@posix_only
def test_sigterm_handling_is_installed_only_during_a_save_and_never_over_the_programs(tmp_path, monkeypatch):
    seen = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: seen.append(signal.getsignal(signal.SIGTERM)) or real_fsync(fd))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        d2p.save({"w": np.ones(2)}, tmp_path / "a.safetensors")
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        during = seen[0]  # at the file's fsync (the directory's comes after the rename)
        assert callable(during) and during not in (signal.SIG_DFL, signal.SIG_IGN)

        def mine(signum, frame):
            pass

        seen.clear()
        signal.signal(signal.SIGTERM, mine)
        d2p.save({"w": np.ones(2)}, tmp_path / "b.safetensors")
        assert seen and all(h is mine for h in seen) and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- #10 modes and symbolic links ----------------------------------------------------------------

@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_saving_keeps_the_mode_of_the_replaced_file(tmp_path, mode):
    path = tmp_path / "net.safetensors"
    d2p.save({"w": np.ones(2)}, path)
    os.chmod(path, mode)
    d2p.save({"w": np.zeros(2)}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    np.testing.assert_array_equal(d2p_io.read(path)[0]["w"], np.zeros(2))


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask):
    # in a process of its own: the umask is process-wide
    proc = run_python(
        f"import os, numpy as np, d2lparams as d2p; os.umask({umask}); "
        f"d2p.save({{'w': np.ones(2)}}, {str(tmp_path / 'new.safetensors')!r}); "
        f"open({str(tmp_path / 'plain')!r}, 'w').close()"
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "new.safetensors").st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == 0o666 & ~umask


@posix_only
def test_a_symlink_is_written_through_atomically_and_stays_a_symlink(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    target = store / "v1.safetensors"
    d2p.save({"w": np.ones(2)}, target)
    os.chmod(target, 0o640)
    link = tmp_path / "latest.safetensors"
    os.symlink(os.path.join("store", "v1.safetensors"), link)
    chain = tmp_path / "current.safetensors"
    os.symlink("latest.safetensors", chain)
    d2p.save({"w": np.full(2, 5.0)}, chain)
    assert os.path.islink(chain) and os.path.islink(link)
    assert os.readlink(link) == os.path.join("store", "v1.safetensors")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    np.testing.assert_array_equal(d2p_io.read(target)[0]["w"], np.full(2, 5.0))
    assert sorted(os.listdir(store)) == ["v1.safetensors"]  # the temporary file was there

    dangling = tmp_path / "next.safetensors"
    os.symlink(os.path.join("store", "v2.safetensors"), dangling)
    d2p.save({"w": np.full(2, 6.0)}, dangling)  # creates the file the link names
    assert os.path.islink(dangling)
    np.testing.assert_array_equal(d2p_io.read(store / "v2.safetensors")[0]["w"], np.full(2, 6.0))


@posix_only
def test_saving_onto_a_fifo_is_refused_before_anything_is_written(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"FIFO \(named pipe\), not a regular file"):
        d2p.save({"w": np.ones(2)}, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]


# -- #11 import orders ---------------------------------------------------------------------------

@pytest.mark.skipif(not {"tensorflow", "paddle"} <= set(d2p.available_backends()),
                    reason="needs tensorflow and paddle installed")
def test_paddle_imported_before_tensorflow_is_usable_and_the_crashing_order_is_refused():
    proc = run_python("""
import paddle, tensorflow
import numpy as np, d2lparams as d2p
a = d2p.nn.Linear(2, 3, backend="paddle")
b = d2p.nn.Linear(2, 3, backend="tensorflow")
b.load_state_dict(a.state_dict())
X = np.ones((1, 2), np.float32)
print(np.array_equal(d2p.to_numpy(a(X)), d2p.to_numpy(b(X))), d2p.set_backend("paddle"))
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["True", "paddle"]
    proc = run_python("""
import tensorflow, sys, d2lparams as d2p
try:
    d2p.set_backend("paddle")
except d2p.BackendConflict as exc:
    print("refused", "paddle" in sys.modules)
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["refused", "False"]


# -- #12 one meaning for inputs (adapter work: see ADAPTER_GAPS) ---------------------------------

def native_float64(backend, array):
    """A float64 tensor of ``backend`` (d2p.tensor makes float32 only)."""
    if backend == "torch":
        import torch
        return torch.tensor(array, dtype=torch.float64)
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.constant(array, dtype=tf.float64)
    if backend == "mxnet":
        import mxnet as mx
        return mx.nd.array(array, dtype="float64")
    if backend == "jax":
        import jax.numpy as jnp
        from jax.experimental import enable_x64
        with enable_x64(True):  # a float64 array exists in JAX's 64-bit scope
            return jnp.asarray(array, dtype=jnp.float64)
    import paddle
    return paddle.to_tensor(array, dtype="float64")


def test_a_rank_1_input_is_one_sample_on_every_backend(backend, request):
    adapter_gap(request, backend, "rank-1 input")
    net = nn.mlp(4, 8, 2)
    sd = net.state_dict()
    x = np.arange(4, dtype=np.float32)
    expected = np.maximum(x @ sd["0.weight"] + sd["0.bias"], 0) @ sd["2.weight"] + sd["2.bias"]
    np.testing.assert_allclose(d2p.to_numpy(net(d2p.tensor(x))), expected, rtol=1e-5, atol=1e-6)


def test_an_empty_batch_gives_an_empty_output_on_every_backend(backend, request):
    adapter_gap(request, backend, "empty batch")
    out = nn.mlp(4, 8, 2)(d2p.tensor(np.zeros((0, 4))))
    assert tuple(d2p.to_numpy(out).shape) == (0, 2)


def test_a_float64_native_input_is_a_type_error_on_every_backend(backend, request):
    adapter_gap(request, backend, "float64 input")
    with pytest.raises(TypeError, match="float64"):
        nn.mlp(4, 8, 2)(native_float64(backend, np.ones((2, 4))))


# -- #15 foreign tensors -------------------------------------------------------------------------

def test_foreign_tensors_are_converted_where_they_can_be(backend, tmp_path):
    values = np.arange(8, dtype=np.float32).reshape(2, 4)
    foreign = other_backend_tensor(backend, values)
    path = d2p.save({"w": foreign}, tmp_path / "f.safetensors")
    np.testing.assert_array_equal(d2p_io.read(path)[0]["w"], values)
    lin = nn.Linear(2, 4)
    lin.load_state_dict({"weight": foreign, "bias": np.zeros(4)})
    np.testing.assert_array_equal(lin.weight.numpy(), values)


# -- #16 reading files that are not checkpoints ---------------------------------------------------

@posix_only
def test_loading_a_fifo_or_a_device_answers_at_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = (
        "import d2lparams.io as io, d2lparams as d2p\n"
        f"for path in ({str(fifo)!r}, '/dev/zero'):\n"
        "    try:\n"
        "        io.read(path)\n"
        "    except d2p.StateDictError as exc:\n"
        "        print(str(exc).split(';')[0])\n"
    )
    proc = run_python(code, timeout=120)  # a FIFO read that blocks would end here, as a failure
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{str(fifo)!r} is a FIFO (named pipe), not a regular file",
        "'/dev/zero' is a character device, not a regular file",
    ]


def test_a_header_length_beyond_the_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes((10**15).to_bytes(8, "little") + b"{}")
    with pytest.raises(d2p.StateDictError, match=r"header length field says 1000000000000000 bytes"):
        d2p_io.read(path)


def test_a_nan_written_into_param_groups_is_refused_at_step(backend):
    net = nn.Linear(2, 1)
    before = net.state_dict()
    opt = optim.SGD(net.parameters(), lr=0.1)
    d2p.backward(lambda: ops.sum(net(np.ones((1, 2), np.float32))))
    opt.param_groups[0]["lr"] = float("nan")
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    states_equal(net.state_dict(), before)
