"""Porting by structure between models whose names differ, and the layer-by-layer diff."""

import re

import numpy as np
import pytest

import d2lparams as d2p
from d2lparams import chapter, nn

from conftest import relu


def nested_plain():
    """The chapter's rgnet with keras/mxnet-style names: blocks added by position, so the
    names are 0.0.0.weight where chapter.rgnet() has 0.block 0.0.weight."""
    return nn.Sequential(nn.Sequential(*[chapter.block1() for _ in range(4)]), nn.Linear(4, 1))


def rgnet_reference(sd, names, X):
    h = X
    for i in range(4):
        for j in (0, 2):
            h = relu(h @ sd[names[f"{i}.{j}.weight"]] + sd[names[f"{i}.{j}.bias"]])
    return h @ sd[names["head.weight"]] + sd[names["head.bias"]]


def test_port_maps_by_structure_and_the_outputs_agree(backend):
    src, dst = chapter.rgnet(), nested_plain()
    with pytest.raises(d2p.StateDictError, match=r"strict=False to load the 2 matching tensors.*d2p\.port"):
        dst.load_state_dict(src.state_dict())
    mapping = d2p.port(src, dst)
    assert len(mapping) == 18
    assert mapping["0.block 2.2.bias"] == "0.2.2.bias" and mapping["1.weight"] == "1.weight"
    sd = src.state_dict()
    for a, b in mapping.items():
        np.testing.assert_array_equal(dst.state_dict()[b], sd[a])
    X = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    names = {f"{i}.{j}.{k}": f"0.block {i}.{j}.{k}" for i in range(4) for j in (0, 2)
             for k in ("weight", "bias")}
    names.update({"head.weight": "1.weight", "head.bias": "1.bias"})
    np.testing.assert_allclose(d2p.to_numpy(dst(X)), rgnet_reference(sd, names, X), rtol=1e-5,
                               atol=1e-6)


def test_port_refuses_another_structure_and_changes_nothing(backend):
    src = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    dst = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = dst.state_dict()
    with pytest.raises(d2p.StateDictError) as err:
        d2p.port(src, dst)
    text = str(err.value)
    assert "first difference at position 2" in text and "2.weight" in text and "(8, 3)" in text
    for key, value in dst.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_port_keeps_ties_and_refuses_a_missing_one(backend):
    tied, also_tied = chapter.tied_net(), chapter.tied_net()
    mapping = d2p.port(tied, also_tied)
    assert "4.weight" not in mapping  # a tied parameter is one member, under its first name
    assert also_tied[2].weight is also_tied[4].weight
    untied = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                           nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.raises(d2p.StateDictError, match="structures differ"):
        d2p.port(tied, untied)


def bn_net(momentum=0.1):
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=momentum), nn.ReLU(),
                         nn.Linear(4, 2))


X = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)


def test_diff_of_a_correct_port_is_zero(backend):
    report = d2p.diff(bn_net(), bn_net(), X)
    assert report.first_divergence is None
    assert report.layers and report.parameters
    assert max(r.max_abs for r in report.layers + report.parameters) < 1e-6
    text = str(report)
    for name in ("0", "1", "1.running_mean", "3", "0.weight", "3.bias"):
        assert name in text
    assert "first divergence: none" in text


@pytest.mark.parametrize("break_it, layer", [
    ("transposed weight", "2"),
    ("wrong activation", "3"),
    ("flipped BatchNorm momentum", "1"),
])
def test_diff_names_the_first_layer_that_diverges(backend, break_it, layer):
    a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.ReLU(),
                      nn.Linear(4, 2))
    b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.9 if "momentum" in break_it
                                                      else 0.1),
                      nn.Linear(4, 4), nn.Sigmoid() if "activation" in break_it else nn.ReLU(),
                      nn.Linear(4, 2))
    if break_it == "transposed weight":
        d2p.port(a, b)
        b[2].weight.set(b[2].weight.numpy().T.copy())
        report = d2p.diff(a, b, X, port=False)
    else:
        report = d2p.diff(a, b, X)
    assert report.first_divergence == layer, str(report)
    assert f"first divergence: {layer}" in str(report)
    page = report.to_html()  # the HTML report's rendering: the divergent layer in red
    assert f'<tr class="fail"><td>{layer}' in page  # its output or its state
    assert f'First divergence: <span class="fail">{layer}</span>' in page


def test_a_diff_of_traces_written_by_two_processes_is_the_diff(backend, tmp_path):
    """``d2lparams compare`` traces each backend in its own process and diffs the files."""
    from d2lparams.interop import diff_traces, load_trace, save_trace, trace
    from d2lparams.report import diff_section

    a, b = bn_net(), bn_net()
    d2p.port(a, b)
    b[3].bias.set(b[3].bias.numpy() + 1)
    direct = d2p.diff(a, b, X, port=False)
    for name, model in (("a", a), ("b", b)):
        save_trace(tmp_path / f"{name}.npz", trace(model, X))
    report = diff_traces(load_trace(tmp_path / "a.npz"), load_trace(tmp_path / "b.npz"))
    assert str(report) == str(direct) and report.first_divergence == "3"
    section = diff_section({"reference": backend, "reports": [report.to_dict()],
                            "missing": {"other": "RuntimeError: boom"}})
    for name in ("0", "1.running_mean", "3", "0.weight", "3.bias"):
        assert f"<td>{name}</td>" in section, name
    assert '<tr class="fail"><td>3</td>' in section and "other: no layer-by-layer diff" in section


def test_port_and_diff_across_backends_in_one_process():
    pair = [n for n in ("torch", "mxnet") if n in d2p.available_backends()]
    if len(pair) < 2:
        pytest.skip("needs torch and mxnet, which live in one process")
    a = nn.mlp(3, 4, 2, backend=pair[0])
    b = nn.mlp(3, 4, 2, backend=pair[1])
    report = d2p.diff(a, b, X)
    assert report.backends == tuple(pair)
    assert report.first_divergence is None
    assert max(r.relative for r in report.layers + report.parameters) < 1e-5


def test_the_diff_command_compares_two_checkpoints(backend, tmp_path, capsys):
    from d2lparams.cli import main

    src, dst = chapter.rgnet(), nested_plain()
    d2p.port(src, dst)
    a, b = d2p.save(src, tmp_path / "a.safetensors"), d2p.save(dst, tmp_path / "b.safetensors")
    assert main(["diff", a, b]) == 0
    out = capsys.readouterr().out
    assert "0.block 3.2.weight" in out and "first divergence: none" in out
    dst[1].bias.set(dst[1].bias.numpy() + 1)
    d2p.save(dst, b)
    page = tmp_path / "diff.html"
    assert main(["diff", a, b, "--out", str(page)]) == 1
    assert "first divergence: 1.bias" in capsys.readouterr().out
    html = page.read_text()
    assert not re.search(r"\b(src|href)\s*=", html) and "<script" not in html
    assert '<tr class="fail"><td>1.bias</td>' in html and "<td>0.block 3.2.weight</td>" in html
    d2p.save(nn.mlp(4, 8, 1), b)
    assert main(["diff", a, b]) == 2
    assert "hold other tensors" in capsys.readouterr().err
