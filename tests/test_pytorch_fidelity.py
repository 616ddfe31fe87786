"""PyTorch's meaning, measured against PyTorch itself.

Each scenario is written once against a small namespace ``F`` and run twice: on real
``torch.nn`` and on ``d2lparams.nn`` (on every backend). The expected results below are
PyTorch's; ``test_the_table_is_pytorchs`` checks the table against torch itself wherever
torch is installed, so the table cannot drift from PyTorch, and the backend tests still run
where torch is not installed (a backend alone in its environment).
"""

import copy
import types
from collections import OrderedDict

import numpy as np
import pytest

import d2lparams as d2p


def outcome(fn):
    """The exception class name, or the value."""
    try:
        return fn()
    except Exception as exc:  # the type is the observable
        return type(exc).__name__


def _none_shadowing(F):
    m = F.nn.Module()
    m.a = None
    m.a = F.param(3)
    return type(m.a).__name__, [n for n, _ in m.named_parameters()]


def _register_over_plain_attribute(F):
    def buffer():
        m = F.nn.Module()
        m.x = 1
        m.register_buffer("x", F.tensor(2))

    def parameter():
        m = F.nn.Module()
        m.x = 1
        m.register_parameter("x", F.param(2))

    def module():
        m = F.nn.Module()
        m.x = 1
        m.add_module("x", F.nn.ReLU())

    return outcome(buffer), outcome(parameter), outcome(module)


def _none_members(F):
    m = F.nn.Module()
    m.register_parameter("bias", None)
    m.register_buffer("stat", None)
    m.add_module("head", None)
    return (m.bias, m.stat, m.head, [n for n, _ in m.named_parameters()],
            [n for n, _ in m.named_buffers()], [n for n, _ in m.named_children()],
            list(m.state_dict()))


def _bad_names(F):
    m = F.nn.Module()
    return (outcome(lambda: m.register_buffer("x", 5)),
            outcome(lambda: m.register_parameter(1, F.param(2))),
            outcome(lambda: m.add_module(1, F.nn.ReLU())),
            outcome(lambda: m.register_buffer("", F.tensor(2))),
            outcome(lambda: m.register_parameter("a.b", F.param(2))),
            outcome(lambda: m.add_module("a.b", F.nn.ReLU())),
            outcome(lambda: m.train("invalid")))


def _requires_grad_and_zero_grad(F):
    net = F.nn.Sequential(F.nn.Linear(3, 3), F.nn.ReLU(), F.nn.Linear(3, 1))
    frozen = [p.requires_grad for p in net.requires_grad_(False).parameters()]
    net.requires_grad_()
    F.backward(lambda: F.sum(net(F.tensor(2, 3))))
    net.zero_grad(set_to_none=False)
    zeros = [F.grad(p) is not None and not np.asarray(F.grad(p)).any() for p in net.parameters()]
    net.zero_grad()
    nones = [F.grad(p) is None for p in net.parameters()]
    return frozen, zeros, nones


def _submodules(F):
    net = F.nn.Sequential(F.nn.Sequential(F.nn.Linear(2, 2), F.nn.ReLU()), F.nn.Linear(2, 1))
    inner = type(net.get_submodule("0.1")).__name__
    missing = outcome(lambda: net.get_submodule("0.7"))
    net.set_submodule("0.1", F.nn.Tanh())
    return inner, missing, [type(m).__name__ for m in net[0]]


def _sequential_editing(F):
    nn = F.nn
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Tanh())
    sliced = [n for n, _ in net[1:3].named_children()], type(net[1:3]).__name__
    net[1] = nn.Sigmoid()
    del net[2]
    after_del = [(n, type(m).__name__) for n, m in net.named_children()]
    net.insert(1, nn.ReLU())
    net.append(nn.Identity())
    net.extend([nn.Tanh()])
    popped = type(net.pop(0)).__name__
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    return (sliced, after_del, [(n, type(m).__name__) for n, m in net.named_children()], popped,
            [n for n, _ in named.named_parameters()], "0" in dir(net), "fc" in dir(named))


def _module_list_editing(F):
    nn = F.nn
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml += [nn.ReLU(), nn.Tanh()]
    ml.insert(1, nn.Sigmoid())
    ml[0] = nn.Identity()
    del ml[2]
    popped = type(ml.pop(0)).__name__
    sliced = type(ml[0:1]).__name__, len(ml[0:1])
    return ([(n, type(m).__name__) for n, m in ml.named_children()], popped, sliced,
            outcome(lambda: ml(F.tensor(1, 2))))


def _extra_parameter_on_a_builtin_layer(F):
    lin = F.nn.Linear(2, 3)
    lin.scale = F.param(3)
    return [n for n, _ in lin.named_parameters()], list(lin.state_dict())


def _shared_buffer(F):
    m = F.nn.Module()
    t = F.tensor(3)
    m.register_buffer("a", t)
    m.register_buffer("b", t)
    return list(m.state_dict()), len(list(m.named_buffers())), len(list(m.buffers()))


def _deepcopy(F):
    shared = F.nn.Linear(3, 3)
    net = F.nn.Sequential(F.nn.Linear(2, 3), F.nn.ReLU(), shared, F.nn.ReLU(), shared)
    twin = copy.deepcopy(net)
    same = all(np.array_equal(F.value(a), F.value(b))
               for a, b in zip(net.state_dict().values(), twin.state_dict().values()))
    F.fill(twin[0].bias, 7.0)
    return (type(twin).__name__, same, twin[2].weight is twin[4].weight,
            twin[0].weight is not net[0].weight, float(np.asarray(F.value(net[0].bias)).max()) != 7.0,
            list(twin.state_dict()))


def _load_state_dict_errors(F):
    net = F.nn.Linear(2, 2)
    caught = []
    for bad in ({"weight": np.zeros((5, 5), np.float32)}, {"nope": np.zeros(1, np.float32)}):
        try:
            net.load_state_dict(F.state(bad), strict=True)
        except RuntimeError as exc:
            caught.append(isinstance(exc, RuntimeError))
    ok = net.load_state_dict(net.state_dict())
    return caught, str(ok)


def _calculate_gain(F):
    gain = F.calculate_gain
    return (outcome(lambda: gain("leaky_relu", True)), outcome(lambda: gain("leaky_relu", [1])),
            round(gain("leaky_relu", 0.2), 12), outcome(lambda: gain("nope")),
            round(gain("conv_transpose2d"), 12))


def _conv_fans(F):
    return [tuple(F.fans(shape)) for shape in ((8, 3, 5, 5), (16, 2, 3), (4, 4, 1, 1, 2))]


def _optimizer_state_indices(F):
    a, b, c = F.param(2), F.param(2), F.param(2)
    opt = F.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    F.backward(lambda: F.sum(a * 2) + F.sum(b * 3) + F.sum(c * 4))
    opt.step()
    sd = opt.state_dict()
    return ([g["params"] for g in sd["param_groups"]], sorted(sd["state"]),
            [g["lr"] for g in sd["param_groups"]])


def _containers(F):
    nn = F.nn
    pl = nn.ParameterList([F.param(2), F.param(3)])
    pl.append(F.param(4))
    pd = nn.ParameterDict({"scale": F.param(2)})
    pd["shift"] = F.param(2)
    md = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md["b"] = nn.ReLU()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pl, self.pd, self.md = pl, pd, md

    net = Net()
    return ([n for n, _ in net.named_parameters()], len(pl), list(pd.keys()), list(md),
            "scale" in pd, type(md["b"]).__name__)


def _hand_written_sequential(F):
    nn = F.nn

    class MySequential(nn.Module):
        def __init__(self, *args):
            super().__init__()
            for idx, module in enumerate(args):
                self._modules[str(idx)] = module

        def forward(self, X):
            for block in self._modules.values():
                X = block(X)
            return X

    net = MySequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    del net._modules["1"]
    return ([n for n, _ in net.named_parameters()], F.native_count(net),
            tuple(F.value(net(F.tensor(2, 4))).shape))


def _data_idioms(F):
    net = F.nn.Sequential(F.nn.Linear(3, 3), F.nn.ReLU(), F.nn.Linear(3, 3))
    F.fill(net[0].weight, 1.0)
    net[0].weight.data[0, 0] = 100
    net[0].weight.data *= 2
    net[0].weight.data[:] += 1
    row = np.asarray(net[0].weight.data[0]).tolist()
    F.backward(lambda: F.sum(net(F.tensor(1, 3))))
    net[0].weight.data.fill_(0)
    return row, np.asarray(F.value(net[0].weight)).sum()


def _forward_hooks(F):
    nn = F.nn
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    F.fill(net[0].weight, 1.0)
    F.fill(net[0].bias, 0.0)
    F.fill(net[2].weight, 1.0)
    F.fill(net[2].bias, 0.0)
    seen = []
    h1 = net[0].register_forward_pre_hook(lambda m, args: seen.append("pre1") or (args[0] * 2,))
    h2 = net[0].register_forward_pre_hook(lambda m, args: seen.append("pre2"))
    h3 = net[0].register_forward_hook(lambda m, args, out: seen.append("post") or out + 1)
    first = np.asarray(F.value(net(F.tensor(1, 2)))).tolist()
    h1.remove()
    second = np.asarray(F.value(net(F.tensor(1, 2)))).tolist()
    h2.remove()
    h3.remove()
    third = np.asarray(F.value(net(F.tensor(1, 2)))).tolist()
    return seen, first, second, third


def _gradient_hooks(F):
    p = F.param(3)
    calls = []
    h = p.register_hook(lambda g: calls.append(np.asarray(F.value(g)).tolist()) or g * 3)
    F.backward(lambda: F.sum(p * 2))
    first = np.asarray(F.grad(p)).tolist()
    h.remove()
    F.backward(lambda: F.sum(p * 2))
    return calls, first, np.asarray(F.grad(p)).tolist()


SCENARIOS = {
    "none shadowing": (_none_shadowing, ("Parameter", ["a"])),
    "register over a plain attribute": (_register_over_plain_attribute,
                                        ("KeyError", "KeyError", "KeyError")),
    "None members": (_none_members, (None, None, None, [], [], [], [])),
    "bad names and modes": (_bad_names, ("TypeError", "TypeError", "TypeError", "KeyError",
                                         "KeyError", "KeyError", "ValueError")),
    "requires_grad_ and zero_grad": (_requires_grad_and_zero_grad,
                                     ([False] * 4, [True] * 4, [True] * 4)),
    "get_submodule and set_submodule": (_submodules, ("ReLU", "AttributeError", ["Linear", "Tanh"])),
    "Sequential editing": (_sequential_editing, (
        (["1", "2"], "Sequential"),
        [("0", "Linear"), ("1", "Sigmoid"), ("2", "Tanh")],
        [("0", "ReLU"), ("1", "Sigmoid"), ("2", "Tanh"), ("3", "Identity"), ("4", "Tanh")],
        "Linear", ["fc.weight", "fc.bias"], False, True)),
    "ModuleList editing": (_module_list_editing, (
        [("0", "Sigmoid"), ("1", "Tanh")], "Identity", ("ModuleList", 1), "NotImplementedError")),
    "extra parameter on a built-in layer": (_extra_parameter_on_a_builtin_layer, (
        ["weight", "bias", "scale"], ["weight", "bias", "scale"])),
    "one tensor registered twice": (_shared_buffer, (["a", "b"], 1, 1)),
    "deepcopy": (_deepcopy, ("Sequential", True, True, True, True,
                             ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])),
    "load_state_dict errors are RuntimeErrors": (_load_state_dict_errors,
                                                 ([True, True], "<All keys matched successfully>")),
    "calculate_gain": (_calculate_gain, ("ValueError", "ValueError", round((2 / 1.04) ** 0.5, 12),
                                         "ValueError", 1.0)),
    "conv fans": (_conv_fans, [(75, 200), (6, 48), (8, 8)]),
    "optimizer state indices": (_optimizer_state_indices, ([[0, 1], [2]], [0, 1, 2], [0.1, 0.5])),
    "parameter and module containers": (_containers, (
        ["pl.0", "pl.1", "pl.2", "pd.scale", "pd.shift", "md.a.weight", "md.a.bias"], 3,
        ["scale", "shift"], ["a", "b"], True, "ReLU")),
    "self._modules[name] = module": (_hand_written_sequential, (
        ["0.weight", "0.bias", "2.weight", "2.bias"], 4, (2, 1))),
    ".data idioms": (_data_idioms, ([201.0, 3.0, 3.0], 0.0)),
    "forward hooks": (_forward_hooks, (["pre1", "pre2", "post", "pre2", "post"], [[10.0]],
                                       [[6.0]], [[4.0]])),
    "gradient hooks": (_gradient_hooks, ([[2.0, 2.0, 2.0]], [6.0, 6.0, 6.0], [8.0, 8.0, 8.0])),
}


def torch_namespace():
    torch = pytest.importorskip("torch", reason="the reference is PyTorch itself")
    return types.SimpleNamespace(
        nn=torch.nn,
        param=lambda *shape: torch.nn.Parameter(torch.ones(*shape)),
        tensor=lambda *shape: torch.ones(*shape),
        backward=lambda fn: fn().backward(),
        sum=torch.sum,
        grad=lambda p: None if p.grad is None else p.grad.numpy(),
        value=lambda x: x.detach().numpy(),
        fill=lambda p, v: torch.nn.init.constant_(p, v),
        state=lambda d: {k: torch.from_numpy(v) for k, v in d.items()},
        calculate_gain=torch.nn.init.calculate_gain,
        fans=lambda shape: torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape)),
        SGD=torch.optim.SGD,
        native_count=lambda net: len(list(net.parameters())),
    )


def _native_count(net):
    """How many parameters the framework's own module holds (what its optimizer sees)."""
    return len(set(d2p.native_names(net).values()))


def d2p_namespace():
    from d2lparams import init, nn, ops, optim

    return types.SimpleNamespace(
        nn=nn,
        param=lambda *shape: nn.Parameter(np.ones(shape, np.float32)),
        tensor=lambda *shape: d2p.ones(*shape),
        backward=d2p.backward,
        sum=ops.sum,
        grad=lambda p: p.grad,
        value=d2p.to_numpy,
        fill=lambda p, v: init.constant_(p, v),
        state=dict,
        calculate_gain=init.calculate_gain,
        fans=init.fans,
        SGD=optim.SGD,
        native_count=_native_count,
    )


def test_the_table_is_pytorchs():
    F = torch_namespace()
    for name, (scenario, expected) in SCENARIOS.items():
        assert scenario(F) == expected, name


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_pytorch_meaning(backend, name):
    scenario, expected = SCENARIOS[name]
    assert scenario(d2p_namespace()) == expected
