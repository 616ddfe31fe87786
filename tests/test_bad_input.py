"""Issues 7 and 17: a catalogue of bad input. Each case asserts the error type, that the message
names the fix, and that the models, the optimizer and the files on disk are exactly as they
were."""

import os

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import init, nn, ops, optim

from conftest import other_backend_tensor, write_safetensors


def tied_net():
    shared = nn.Linear(4, 4)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), shared, nn.ReLU(), shared)


class World:
    """What a case may break: a network (and a tied one), an optimizer with momentum buffers
    and checkpoints on disk, good and bad."""

    def __init__(self, tmp_path):
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.tied = tied_net()
        self.lazy = nn.Sequential(nn.LazyLinear(3))
        self.opt = optim.SGD(self.net.parameters(), lr=0.1, momentum=0.9)
        d2p.backward(lambda: ops.sum(self.net(np.ones((2, 4), np.float32))))
        self.opt.step()  # momentum buffers exist
        self.dir = tmp_path
        self.path = tmp_path / "net.safetensors"
        d2p.save(self.net, self.path)
        good = self.path.read_bytes()
        (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 3])
        (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
        (tmp_path / "header.safetensors").write_bytes(good[:12])
        (tmp_path / "huge-header.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
        d2p.save({"weight": np.ones((3, 3))}, tmp_path / "plain.safetensors")
        state = self.net.state_dict()
        self.untied_state = {k: v + (k.startswith("4.")) for k, v in self.tied.state_dict().items()}
        d2p.save(self.untied_state, tmp_path / "untied.safetensors")
        d2p.save({**state, "0.bias": np.full(8, np.nan, np.float32)}, tmp_path / "nan.safetensors")
        as_bf16 = {k: ("BF16", v.shape, (v.view(np.uint32) >> 16).astype("<u2").tobytes())
                   for k, v in state.items()}
        write_safetensors(tmp_path / "bf16.safetensors", as_bf16)
        as_f32 = {k: ("F32", v.shape, v.tobytes()) for k, v in state.items()}
        write_safetensors(tmp_path / "order.safetensors", as_f32, order='["0.weight", ')
        write_safetensors(tmp_path / "tied.safetensors", as_f32, tied='[["0.weight"]]')

    def snapshot(self):
        files = {p.name: p.read_bytes() for p in sorted(self.dir.iterdir()) if p.is_file()}
        models = {**self.net.state_dict(), **{f"tied:{k}": v for k, v in self.tied.state_dict().items()}}
        opt = self.opt.state_dict()
        buffers = {i: e["momentum_buffer"].copy() for i, e in opt["state"].items()}
        return models, files, (opt["param_groups"], buffers)

    def optimizer_state(self, **group_changes):
        state = self.opt.state_dict()
        state["param_groups"] = [{**g, **group_changes} for g in state["param_groups"]]
        return state

    def optimizer_buffer(self, value):
        state = self.opt.state_dict()
        state["state"][0] = {"momentum_buffer": value}
        return state


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
    ("set complex", lambda w: w.net[0].weight.set(np.ones((4, 8)) * 1j), ValueError, r"complex values .* imaginary part"),
    ("set beyond float32", lambda w: w.net[0].bias.set(np.full(8, 1e39)), ValueError, r"beyond float32's range"),
    # building
    ("linear zero size", lambda w: nn.Linear(0, 3), ValueError, r"positive int, got 0"),
    ("linear text size", lambda w: nn.Linear(4, "8"), ValueError, r"positive int, got '8'"),
    ("linear bias text", lambda w: nn.Linear(4, 8, bias="yes"), TypeError, r"True or False"),
    ("negative dropout", lambda w: nn.Dropout(-0.1), ValueError, r"probability in \[0, 1\)"),
    ("dropout one", lambda w: nn.Dropout(1.0), ValueError, r"probability in \[0, 1\)"),
    ("batchnorm zero", lambda w: nn.BatchNorm1d(0), ValueError, r"positive int"),
    ("batchnorm NaN eps", lambda w: nn.BatchNorm1d(3, eps=float("nan")), ValueError, r"eps must be a finite number > 0, got nan; the usual value is 1e-5"),
    ("dropout NaN", lambda w: nn.Dropout(float("nan")), ValueError, r"probability in \[0, 1\), got nan"),
    ("dropout NumPy bool", lambda w: nn.Dropout(np.bool_(True)), ValueError, r"got True \(numpy\.bool_?\)"),
    ("mlp hidden None", lambda w: nn.mlp(4, None, 1), TypeError, r"int or a list of ints .*got None; for no hidden layer pass \[\]"),
    ("mlp hidden width zero", lambda w: nn.mlp(4, [8, 0], 1), ValueError, r"mlp hidden width must be a positive int, got 0"),
    ("buffer named __metadata__", lambda w: w.net.register_buffer("__metadata__", np.ones(2)), ValueError, r"reserve that name for their metadata"),
    ("parameter named __metadata__", lambda w: w.net.register_parameter("__metadata__", nn.Parameter(np.ones(2))), ValueError, r"reserve that name"),
    ("batchnorm momentum", lambda w: nn.BatchNorm1d(3, momentum=2), ValueError, r"momentum must be a finite number in \[0, 1\]"),
    ("softmax dim text", lambda w: nn.Softmax(dim="last"), TypeError, r"dim must be an int"),
    ("mlp activation", lambda w: nn.mlp(4, 8, 1, activation="gelu"), ValueError, r"one of \['relu', 'sigmoid', 'tanh'\]"),
    ("register non-parameter", lambda w: w.net.register_parameter("extra", np.ones(3)), TypeError, r"nn\.Parameter\(value\)"),
    ("add non-module", lambda w: w.net.add_module("extra", np.ones(3)), TypeError, r"is not an nn\.Module"),
    ("module name with dot", lambda w: w.net.add_module("a.b", nn.ReLU()), KeyError, r"must not contain a dot"),
    ("child over an attribute", lambda w: w.net.add_module("training", nn.ReLU()), KeyError, r"already exists"),
    ("replace linear weight", lambda w: setattr(w.net[0], "weight", nn.Parameter(np.ones((4, 8)))), AttributeError, r"\.set\(value\)"),
    ("assign over a child", lambda w: setattr(w.net, "0", 3), TypeError, r"nn\.Module or None expected"),
    ("delete a missing attribute", lambda w: delattr(w.net, "nope"), AttributeError, r"nope"),
    ("PyTorch's p.size()", lambda w: w.net[0].weight.size(), AttributeError, r"no attribute 'size'; for PyTorch's Parameter\.size use p\.shape"),
    ("PyTorch's p.cuda()", lambda w: w.net[0].weight.cuda(), AttributeError, r"module\.to\(\.\.\.\) on the module that holds it"),
    ("PyTorch's module.type()", lambda w: w.net.type("float64"), AttributeError, r"for PyTorch's nn\.Module\.type use module\.to\(dtype\)"),
    ("PyTorch's backward hook", lambda w: w.net.register_full_backward_hook, AttributeError, r"Parameter\.register_hook\(fn\).*no backward hooks on modules"),
    ("no super().__init__", lambda w: NoInit(), AttributeError, r"must call super\(\)\.__init__\(\)"),
    ("no forward", lambda w: NoForward()(np.ones((1, 2))), NotImplementedError, r"define forward\(self, X\)"),
    ("train text", lambda w: w.net.train("yes"), ValueError, r"expected to be boolean"),
    # indexing
    ("index past end", lambda w: w.net[7], IndexError, r"out of range for a Sequential of 3"),
    ("unknown child", lambda w: w.net["hidden"], KeyError, r"children: \['0', '1', '2'\]"),
    ("float index", lambda w: w.net[1.5], TypeError, r"integers or slices"),
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
    ("state NaN", lambda w: w.net.load_state_dict({**w.net.state_dict(), "0.bias": np.r_[np.nan, np.ones(7)]}), d2p.StateDictError, r"0\.bias: 1 of 8 entries are NaN/inf.*allow_nonfinite=True"),
    ("state inf", lambda w: w.net.load_state_dict({**w.net.state_dict(), "2.weight": np.full((8, 1), -np.inf)}), d2p.StateDictError, r"2\.weight: 8 of 8 entries are NaN/inf"),
    ("state overflows float32", lambda w: w.net.load_state_dict({**w.net.state_dict(), "0.bias": np.full(8, 1e39)}), d2p.StateDictError, r"0\.bias: 8 of 8 entries are NaN/inf or beyond float32's range"),
    ("state complex", lambda w: w.net.load_state_dict({**w.net.state_dict(), "0.weight": np.ones((4, 8)) * (1 + 1j)}, allow_nonfinite=True), d2p.StateDictError, r"0\.weight: complex values"),
    ("state float64 into float32", lambda w: w.net.load_state_dict({**w.net.state_dict(), "0.bias": np.full(8, 0.1)}), d2p.StateDictError, r"dtype mismatch: 0\.bias: float64 into float32.*cast=True"),
    ("untied values into a tied net", lambda w: w.tied.load_state_dict(w.untied_state), d2p.StateDictError, r"2\.weight and 4\.weight name one parameter .*different values"),
    ("strict=False wrong shape", lambda w: w.net.load_state_dict({"0.weight": np.ones((2, 2))}, strict=False), d2p.StateDictError, r"expected \(4, 8\)"),
    # initialization
    ("xavier on a bias", lambda w: init.xavier_uniform_(w.net[0].bias), ValueError, r"at least 2 dimensions.*uniform_, normal_ or constant_"),
    ("init on a module", lambda w: init.normal_(w.net), TypeError, r"net\.apply\(fn\)"),
    ("uniform a > b", lambda w: init.uniform_(w.net[0].weight, 1, 0), ValueError, r"a <= b"),
    ("normal std < 0", lambda w: init.normal_(w.net[0].weight, std=-1), ValueError, r"std >= 0"),
    ("constant_ NaN native", lambda w: init.constant_(w.net[0].bias, float("nan"), native=True), ValueError, r"constant_ value must be a finite number, got nan"),
    ("constant_ beyond float32", lambda w: init.constant_(w.net[0].bias, 1e39, native=True), ValueError, r"beyond float32's range"),
    ("normal_ inf mean native", lambda w: init.normal_(w.net[0].weight, mean=float("inf"), native=True), ValueError, r"normal_ mean must be a finite number, got inf"),
    ("normal_ NaN std native", lambda w: init.normal_(w.net[0].weight, std=float("nan"), native=True), ValueError, r"std >= 0\), got nan"),
    ("uniform_ inf bound", lambda w: init.uniform_(w.net[0].weight, -float("inf"), 0.0), ValueError, r"uniform_ a must be a finite number"),
    ("xavier NaN gain", lambda w: init.xavier_uniform_(w.net[0].weight, gain=float("nan"), native=True), ValueError, r"gain must be a finite number"),
    ("kaiming NaN slope", lambda w: init.kaiming_normal_(w.net[0].weight, a=float("nan")), ValueError, r"a \(the negative slope\) must be a finite number"),
    ("kaiming zero-size parameter", lambda w: init.kaiming_uniform_(nn.Parameter(np.zeros((0, 3)))), ValueError, r"at least one element"),
    ("xavier zero-size parameter", lambda w: init.xavier_normal_(nn.Parameter(np.zeros((3, 0)))), ValueError, r"at least one element"),
    ("kaiming mode", lambda w: init.kaiming_uniform_(w.net[0].weight, mode="fan"), ValueError, r"'fan_in' or 'fan_out'"),
    ("unknown nonlinearity", lambda w: init.kaiming_normal_(w.net[0].weight, nonlinearity="gelu"), ValueError, r"use one of linear"),
    ("initializer not a subclass", lambda w: init.initialize_(w.net[0].weight, lambda s, r: np.zeros(s)), TypeError, r"subclass init\.Initializer"),
    ("initializer wrong shape", lambda w: init.initialize_(w.net[0].weight, WrongShape()), ValueError, r"return an array of the shape it is given"),
    ("reset without linear", lambda w: init.reset_(nn.Sequential(nn.ReLU()), "torch"), ValueError, r"no nn\.Linear"),
    ("unknown scheme", lambda w: init.reset_(w.net, "theano"), ValueError, r"unknown backend 'theano'"),
    ("weight_init text", lambda w: nn.Linear(2, 2, weight_init="normal"), TypeError, r"init\.Initializer, a number, or a function"),
    # optimizers
    ("param in two groups", lambda w: optim.SGD([{"params": [w.net[0].weight]}, {"params": w.net.parameters()}], lr=0.1), ValueError, r"give each parameter to one group only"),
    ("negative lr", lambda w: optim.SGD(w.net.parameters(), lr=-0.1), ValueError, r"lr must be a finite number >= 0"),
    ("missing lr", lambda w: optim.SGD(w.net.parameters()), ValueError, r"lacks required option\(s\) \['lr'\]"),
    ("unknown group option", lambda w: optim.SGD([{"params": w.net.parameters(), "beta": 1}], lr=0.1), ValueError, r"known: \['dampening'"),
    ("NaN lr", lambda w: optim.SGD(w.net.parameters(), lr=float("nan")), ValueError, r"SGD lr must be a finite number >= 0, got nan"),
    ("inf momentum", lambda w: optim.SGD(w.net.parameters(), lr=0.1, momentum=float("inf")), ValueError, r"SGD momentum must be a finite number >= 0, got inf"),
    ("NaN weight_decay", lambda w: optim.SGD(w.net.parameters(), lr=0.1, weight_decay=float("nan")), ValueError, r"SGD weight_decay must be a finite number"),
    ("text nesterov", lambda w: optim.SGD(w.net.parameters(), lr=0.1, momentum=0.9, nesterov="yes"), ValueError, r"nesterov must be True or False"),
    ("optimizer state negative lr", lambda w: w.opt.load_state_dict(w.optimizer_state(lr=-1)), d2p.StateDictError, r"nothing was loaded; param group 0: SGD lr must be a finite number >= 0, got -1"),
    ("optimizer state unknown option", lambda w: w.opt.load_state_dict(w.optimizer_state(beta=0.9)), d2p.StateDictError, r"unknown option\(s\) \['beta'\]"),
    ("optimizer state NaN momentum", lambda w: w.opt.load_state_dict(w.optimizer_state(momentum=float("nan"))), d2p.StateDictError, r"momentum must be a finite number"),
    ("optimizer state NaN buffer", lambda w: w.opt.load_state_dict(w.optimizer_buffer(np.full((4, 8), np.nan))), d2p.StateDictError, r"momentum buffer 0.*NaN or inf"),
    ("optimizer state buffer shape", lambda w: w.opt.load_state_dict(w.optimizer_buffer(np.zeros((8, 4)))), d2p.StateDictError, r"momentum buffer 0 has shape \(8, 4\), its parameter \(4, 8\)"),
    ("optimizer state not a dict", lambda w: w.opt.load_state_dict([1]), TypeError, r"takes the dict state_dict\(\) returned"),
    ("MultiStepLR NaN gamma", lambda w: optim.lr_scheduler.MultiStepLR(w.opt, [2], gamma=float("nan")), ValueError, r"gamma must be a finite number > 0, got nan"),
    ("MultiStepLR float milestone", lambda w: optim.lr_scheduler.MultiStepLR(w.opt, [2.5]), ValueError, r"each milestone must be an int >= 1, got 2\.5"),
    ("MultiStepLR without optimizer", lambda w: optim.lr_scheduler.MultiStepLR([], [2]), TypeError, r"pass optim\.SGD"),
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
    ("load other architecture", lambda w: d2p.load(w.net, w.dir / "plain.safetensors"), d2p.StateDictError, r"missing keys.*build the same architecture"),
    ("load NaN checkpoint", lambda w: d2p.load(w.net, w.dir / "nan.safetensors"), d2p.StateDictError, r"0\.bias: 8 of 8 entries are NaN/inf.*allow_nonfinite=True"),
    ("load bf16 checkpoint", lambda w: d2p.load(w.net, w.dir / "bf16.safetensors"), d2p.StateDictError, r"0\.weight: stored as bfloat16, the model holds float32.*cast=True"),
    ("load malformed order", lambda w: d2p.load(w.net, w.dir / "order.safetensors"), d2p.StateDictError, r"malformed metadata 'order' \(not JSON"),
    ("load malformed tied", lambda w: d2p.load(w.net, w.dir / "tied.safetensors"), d2p.StateDictError, r"malformed metadata 'tied': expected a list of groups of two or more names"),
    ("load untied checkpoint into a tied net", lambda w: d2p.load(w.tied, w.dir / "untied.safetensors"), d2p.StateDictError, r"2\.bias and 4\.bias name one parameter"),
    ("load huge header length", lambda w: d2p.load(w.net, w.dir / "huge-header.safetensors"), d2p.StateDictError, r"header length field says 4611686018427387904 bytes"),
    ("load /dev/zero", lambda w: d2p.load(w.net, os.devnull.replace("null", "zero")), d2p.StateDictError, r"character device, not a regular file"),
    ("load a directory", lambda w: d2p.load(w.net, w.dir), d2p.StateDictError, r"is a directory, not a regular file"),
    ("save onto a directory", lambda w: d2p.save(w.net, w.dir), IsADirectoryError, r"is a directory; pass a file path"),
    ("save a __metadata__ key", lambda w: d2p.save({"__metadata__": np.ones(2)}, w.path), ValueError, r"reserves that header key.*nothing was written"),
    ("save complex", lambda w: d2p.save({"w": np.ones(2) * 1j}, w.path), ValueError, r"'w': complex values.*nothing was written"),
    ("save beyond float32", lambda w: d2p.save({"w": np.full(2, 1e39, np.longdouble)}, w.path), ValueError, r"beyond float32's range.*nothing was written"),
    ("save text", lambda w: d2p.save({"w": "ones"}, w.path), TypeError, r"'w': expected a numeric array-like"),
    ("load into non-module", lambda w: d2p.load({}, w.path), TypeError, r"nn\.Module first"),
    ("save bad path type", lambda w: d2p.save(w.net, 42), TypeError, r"str or os\.PathLike"),
    ("save a list", lambda w: d2p.save([1, 2], w.path), TypeError, r"nn\.Module or a state dict"),
    # backends and tensors
    ("unknown backend", lambda w: d2p.set_backend("theano"), ValueError, r"known names and aliases: .*'torch'"),
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
    state, files, (groups, buffers) = world.snapshot()
    with pytest.raises(error, match=fix):
        action(world)
    after_state, after_files, (after_groups, after_buffers) = world.snapshot()
    assert list(after_state) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(after_state[key], value, err_msg=f"{name} changed {key}")
    assert after_files == files, f"{name} changed the files on disk"
    assert after_groups == groups
    assert sorted(after_buffers) == sorted(buffers)
    for i, value in buffers.items():
        np.testing.assert_array_equal(after_buffers[i], value, err_msg=f"{name} changed buffer {i}")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".d2lparams-")]
