"""Issue 7: a catalogue of bad input. Each case asserts the error type, that the message names
the fix, and that the model and the files on disk are exactly as they were."""

import os

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn, ops, optim


class World:
    """What a case may break: a network, an optimizer and a checkpoint on disk."""

    def __init__(self, tmp_path):
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.lazy = nn.Sequential(nn.LazyLinear(3))
        self.opt = optim.SGD(self.net.parameters(), lr=0.1, momentum=0.9)
        self.dir = tmp_path
        self.path = tmp_path / "net.safetensors"
        d2p.save(self.net, self.path)
        good = self.path.read_bytes()
        (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 3])
        (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
        (tmp_path / "header.safetensors").write_bytes(good[:12])
        d2p.save({"weight": np.ones((3, 3))}, tmp_path / "plain.safetensors")

    def snapshot(self):
        files = {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}
        return self.net.state_dict(), files, self.opt.state_dict()["param_groups"]


def other_backend_tensor(backend):
    other = "mxnet" if backend == "torch" else "torch"
    if other not in d2p.available_backends():
        pytest.skip(f"needs {other} installed to make a foreign tensor")
    return d2p.tensor(np.ones((2, 4)), backend=other)


class NoInit(nn.Module):
    def __init__(self):
        self.w = nn.Parameter(np.ones(2))


class NoForward(nn.Module):
    pass


class WrongShape(init.Initializer):
    def __call__(self, shape, rng):
        return np.zeros((1, 1))


CASES = [
    # parameters
    ("set wrong shape", lambda w: w.net[0].weight.set(np.zeros((4, 9))), ValueError, r"expected a value of shape \(4, 8\), got \(4, 9\)"),
    ("set transposed", lambda w: w.net[0].weight.set(np.zeros((8, 4))), ValueError, r"pass value\.T"),
    ("set NaN", lambda w: w.net[0].weight.set(np.full((4, 8), np.nan)), ValueError, r"NaN or inf.*nan_to_num"),
    ("set text", lambda w: w.net[0].weight.set("zeros"), TypeError, r"numeric array-like"),
    ("index write wrong shape", lambda w: w.net[0].weight.__setitem__(0, np.ones(5)), ValueError, r"shape \(4, 8\).*unchanged"),
    ("index out of range", lambda w: w.net[0].weight.__setitem__((9, 0), 1.0), IndexError, r"index .* shape \(4, 8\)"),
    ("index write inf", lambda w: w.net[0].weight.__setitem__((0, 0), np.inf), ValueError, r"finite"),
    ("requires_grad text", lambda w: setattr(w.net[0].weight, "requires_grad", "no"), TypeError, r"True or False"),
    ("parameter from text", lambda w: nn.Parameter("abc"), TypeError, r"array-like|numeric"),
    # building
    ("linear zero size", lambda w: nn.Linear(0, 3), ValueError, r"positive int, got 0"),
    ("linear text size", lambda w: nn.Linear(4, "8"), ValueError, r"positive int, got '8'"),
    ("linear bias text", lambda w: nn.Linear(4, 8, bias="yes"), TypeError, r"True or False"),
    ("negative dropout", lambda w: nn.Dropout(-0.1), ValueError, r"probability in \[0, 1\)"),
    ("dropout one", lambda w: nn.Dropout(1.0), ValueError, r"probability in \[0, 1\)"),
    ("batchnorm zero", lambda w: nn.BatchNorm1d(0), ValueError, r"positive int"),
    ("batchnorm momentum", lambda w: nn.BatchNorm1d(3, momentum=2), ValueError, r"momentum must be a finite number in \[0, 1\]"),
    ("softmax dim text", lambda w: nn.Softmax(dim="last"), TypeError, r"dim must be an int"),
    ("mlp activation", lambda w: nn.mlp(4, 8, 1, activation="gelu"), ValueError, r"one of \['relu', 'sigmoid', 'tanh'\]"),
    ("register non-parameter", lambda w: w.net.register_parameter("extra", np.ones(3)), TypeError, r"nn\.Parameter\(value\)"),
    ("add non-module", lambda w: w.net.add_module("extra", np.ones(3)), TypeError, r"takes an nn\.Module"),
    ("module name with dot", lambda w: w.net.add_module("a.b", nn.ReLU()), ValueError, r"without '\.'"),
    ("duplicate child name", lambda w: w.net.add_module("0", nn.ReLU()), KeyError, r"pick another name"),
    ("replace linear weight", lambda w: setattr(w.net[0], "weight", nn.Parameter(np.ones((4, 8)))), AttributeError, r"\.set\(value\)"),
    ("assign over a child", lambda w: setattr(w.net, "0", 3), TypeError, r"assign an nn\.Parameter / nn\.Module"),
    ("delete a child", lambda w: delattr(w.net, "0"), TypeError, r"build a new module"),
    ("no super().__init__", lambda w: NoInit(), RuntimeError, r"must call super\(\)\.__init__\(\)"),
    ("no forward", lambda w: NoForward()(np.ones((1, 2))), TypeError, r"define forward\(self, X\)"),
    ("train text", lambda w: w.net.train("yes"), TypeError, r"True or False"),
    # indexing
    ("index past end", lambda w: w.net[7], IndexError, r"out of range for a Sequential of 3"),
    ("unknown child", lambda w: w.net["hidden"], KeyError, r"children: \['0', '1', '2'\]"),
    ("float index", lambda w: w.net[1.5], TypeError, r"ints or child names"),
    # calling
    ("wrong input width", lambda w: w.net(np.ones((2, 5), np.float32)), ValueError, r"last axis has 4 features.*got an input of shape \(2, 5\).*LazyLinear"),
    ("wrong backend tensor", lambda w: w.net(other_backend_tensor(d2p.get_backend())), TypeError, r"pass a .* tensor \(d2p\.tensor"),
    ("lazy before call", lambda w: w.lazy[0].weight, d2p.DeferredInitializationError, r"materialize\(input_shape\)"),
    ("lazy state_dict", lambda w: w.lazy.state_dict(), d2p.DeferredInitializationError, r"(?i)call the network once"),
    # state dicts
    ("state missing key", lambda w: w.net.load_state_dict({k: v for k, v in w.net.state_dict().items() if k != "2.bias"}), d2p.StateDictError, r"missing keys: \['2\.bias'\].*strict=False"),
    ("state unexpected key", lambda w: w.net.load_state_dict({**w.net.state_dict(), "3.weight": np.ones(1)}), d2p.StateDictError, r"unexpected keys: \['3\.weight'\]"),
    ("state wrong shape", lambda w: w.net.load_state_dict({**{k: v + 1 for k, v in w.net.state_dict().items()}, "0.weight": np.ones((8, 4))}), d2p.StateDictError, r"0\.weight: expected \(4, 8\), got \(8, 4\).*\(in_features, out_features\)"),
    ("state non-numeric", lambda w: w.net.load_state_dict({**w.net.state_dict(), "0.bias": "zeros"}), d2p.StateDictError, r"0\.bias"),
    ("state not a mapping", lambda w: w.net.load_state_dict([1, 2, 3]), TypeError, r"mapping name -> array"),
    ("strict=False wrong shape", lambda w: w.net.load_state_dict({"0.weight": np.ones((2, 2))}, strict=False), d2p.StateDictError, r"expected \(4, 8\)"),
    # initialization
    ("xavier on a bias", lambda w: init.xavier_uniform_(w.net[0].bias), ValueError, r"at least 2 dimensions.*uniform_, normal_ or constant_"),
    ("init on a module", lambda w: init.normal_(w.net), TypeError, r"net\.apply\(fn\)"),
    ("uniform a > b", lambda w: init.uniform_(w.net[0].weight, 1, 0), ValueError, r"a <= b"),
    ("normal std < 0", lambda w: init.normal_(w.net[0].weight, std=-1), ValueError, r"std >= 0"),
    ("kaiming mode", lambda w: init.kaiming_uniform_(w.net[0].weight, mode="fan"), ValueError, r"'fan_in' or 'fan_out'"),
    ("unknown nonlinearity", lambda w: init.kaiming_normal_(w.net[0].weight, nonlinearity="gelu"), ValueError, r"use one of linear"),
    ("initializer not a subclass", lambda w: init.initialize_(w.net[0].weight, lambda s, r: np.zeros(s)), TypeError, r"subclass init\.Initializer"),
    ("initializer wrong shape", lambda w: init.initialize_(w.net[0].weight, WrongShape()), ValueError, r"return an array of the shape it is given"),
    ("reset without linear", lambda w: init.reset_(nn.Sequential(nn.ReLU()), "torch"), ValueError, r"no nn\.Linear"),
    ("unknown scheme", lambda w: init.reset_(w.net, "jax"), ValueError, r"unknown backend 'jax'"),
    ("weight_init text", lambda w: nn.Linear(2, 2, weight_init="normal"), TypeError, r"init\.Initializer, a number, or a function"),
    # optimizers
    ("param in two groups", lambda w: optim.SGD([{"params": [w.net[0].weight]}, {"params": w.net.parameters()}], lr=0.1), ValueError, r"give each parameter to one group only"),
    ("negative lr", lambda w: optim.SGD(w.net.parameters(), lr=-0.1), ValueError, r"lr must be a finite number >= 0"),
    ("missing lr", lambda w: optim.SGD(w.net.parameters()), ValueError, r"lacks required option\(s\) \['lr'\]"),
    ("unknown group option", lambda w: optim.SGD([{"params": w.net.parameters(), "beta": 1}], lr=0.1), ValueError, r"known: \['dampening'"),
    ("optimize arrays", lambda w: optim.SGD([np.ones(3)], lr=0.1), TypeError, r"pass net\.parameters\(\)"),
    ("optimize nothing", lambda w: optim.SGD([], lr=0.1), ValueError, r"empty parameter list"),
    ("milestones unsorted", lambda w: optim.lr_scheduler.MultiStepLR(w.opt, [20, 10]), ValueError, r"increasing"),
    ("optimizer state mismatch", lambda w: w.opt.load_state_dict({"param_groups": [], "state": {}}), ValueError, r"param groups"),
    # gradients
    ("backward not callable", lambda w: d2p.backward(3.0), TypeError, r"d2p\.backward\(lambda: "),
    ("backward non-scalar", lambda w: d2p.backward(lambda: w.net(np.ones((2, 4), np.float32))), ValueError, r"reduce it first"),
    ("backward returns number", lambda w: d2p.backward(lambda: 1.0), TypeError, r"ops\.sum\(net\(X\)\)"),
    ("write while recording", lambda w: d2p.backward(lambda: w.net[0].bias.set(np.zeros(8)) or ops.sum(w.net(np.ones((1, 4), np.float32)))), RuntimeError, r"write it before or after backward"),
    ("load while recording", lambda w: d2p.backward(lambda: w.net.load_state_dict(w.net.state_dict()) and None), RuntimeError, r"before or after backward"),
    ("step while recording", lambda w: d2p.backward(lambda: w.opt.step() or 1.0), RuntimeError, r"step after backward returns"),
    # files
    ("load truncated", lambda w: d2p.load(w.net, w.dir / "cut.safetensors"), d2p.StateDictError, r"truncated.*save it again"),
    ("load too short", lambda w: d2p.load(w.net, w.dir / "header.safetensors"), d2p.StateDictError, r"truncated.*save it again"),
    ("load junk", lambda w: d2p.load(w.net, w.dir / "junk.safetensors"), d2p.StateDictError, r"not a readable safetensors"),
    ("load missing file", lambda w: d2p.load(w.net, w.dir / "nope.safetensors"), d2p.StateDictError, r"cannot read checkpoint"),
    ("load other architecture", lambda w: d2p.load(w.net, w.dir / "plain.safetensors"), d2p.StateDictError, r"missing keys.*strict=False"),
    ("load into non-module", lambda w: d2p.load({}, w.path), TypeError, r"nn\.Module first"),
    ("save bad path type", lambda w: d2p.save(w.net, 42), TypeError, r"str or os\.PathLike"),
    ("save a list", lambda w: d2p.save([1, 2], w.path), TypeError, r"nn\.Module or a state dict"),
    # backends and tensors
    ("unknown backend", lambda w: d2p.set_backend("jax"), ValueError, r"known names and aliases: .*'torch'"),
    ("backend not a name", lambda w: d2p.set_backend(3), TypeError, r"must be a str"),
    ("negative seed", lambda w: d2p.seed(-1), ValueError, r"d2p\.seed\(0\)"),
    ("negative shape", lambda w: d2p.rand(-1, 2), ValueError, r"non-negative ints"),
    ("to_numpy of an object", lambda w: d2p.to_numpy(object()), TypeError, r"d2p\.tensor|array-like"),
    ("wrap a string", lambda w: d2p.wrap("net"), TypeError, r"torch\.nn\.Module, keras Layer"),
    ("ops on a list", lambda w: ops.relu([1, 2]), TypeError, r"d2p\.tensor\(x\)"),
]


@pytest.mark.parametrize("name, action, error, fix", CASES, ids=[c[0] for c in CASES])
def test_bad_input(backend, tmp_path, name, action, error, fix):
    world = World(tmp_path)
    state, files, groups = world.snapshot()
    with pytest.raises(error, match=fix):
        action(world)
    after_state, after_files, after_groups = world.snapshot()
    assert list(after_state) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(after_state[key], value, err_msg=f"{name} changed {key}")
    assert after_files == files, f"{name} changed the files on disk"
    assert after_groups == groups
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".d2lparams-")]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40
