"""Issue 17: checkpoints under fuzzing (hypothesis): random valid files compared with
safetensors' own reader, every truncation, random headers, flipped bytes, and corrupt
checkpoints loaded into a model on every backend. Bounded for CI: fixed ``max_examples``,
``deadline=None``, no timing; the only property is "a StateDictError, or the right values".
"""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import d2lparams as d2p
from d2lparams import io as d2p_io
from d2lparams import nn

from conftest import D2P_METADATA, write_safetensors

FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

#: safetensors dtype -> the NumPy dtype it stores (those NumPy has, so safetensors can write)
NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}

NAMES = st.text(alphabet="abcxyz._0123456789", min_size=1, max_size=10).filter(lambda n: n != "__metadata__")
TENSORS = st.dictionaries(
    NAMES,
    st.tuples(st.sampled_from(sorted(NUMPY_DTYPES)), st.lists(st.integers(0, 4), max_size=3),
              st.integers(0, 2**32 - 1)),
    max_size=5,
)


def arrays_of(spec):
    """Arrays of every dtype with random bits (NaN payloads, negative zeros, extreme ints)."""
    out = {}
    for name, (dtype, shape, seed) in spec.items():
        rng = np.random.default_rng(seed)
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BOOL":
            out[name] = rng.integers(0, 2, count).astype(bool).reshape(shape)
        else:
            item = np.dtype(NUMPY_DTYPES[dtype]).itemsize
            out[name] = rng.integers(0, 256, count * item, dtype=np.uint8).view(NUMPY_DTYPES[dtype]).reshape(shape)
    return out


def checkpoint_bytes(arrays, order=None):
    meta = {**D2P_METADATA, "order": json.dumps(list(arrays) if order is None else order), "tied": "[]"}
    return st_save(arrays, metadata=meta)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# The backend test comes first: the pytest plugin runs backend items in worker processes, and a
# module whose last items are backend items after an in-process one is not torn down.
def raw_tensors(net):
    """A network's state as ``write_safetensors`` takes it (float32 bytes)."""
    return {k: ("F32", v.shape, np.ascontiguousarray(v).tobytes()) for k, v in net.state_dict().items()}


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURE_OK)
@given(kind=st.sampled_from(["truncate", "flip header", "flip data", "rename", "dtype"]),
       position=st.integers(0, 2**31), mask=st.integers(1, 255))
def test_a_corrupt_checkpoint_never_changes_the_model(backend, tmp_path, kind, position, mask):
    source = nn.mlp(3, 4, 2)
    path = tmp_path / "net.safetensors"
    d2p.save(source, path)
    payload = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(payload[:8], "little")
    if kind == "truncate":
        payload = payload[: position % len(payload)]
    elif kind == "flip header":
        payload[position % header_end] ^= mask
    elif kind == "flip data":
        payload[header_end + position % (len(payload) - header_end)] ^= mask
    elif kind == "rename":
        write_safetensors(path, {k.replace("0.", "9."): v for k, v in raw_tensors(source).items()})
        payload = bytearray(path.read_bytes())
    else:
        tensors = raw_tensors(source)
        name = sorted(tensors)[position % len(tensors)]
        dtype, shape, raw = tensors[name]
        tensors[name] = ("F64", shape, np.frombuffer(raw, np.float32).astype("<f8").tobytes())
        write_safetensors(path, tensors)
        payload = bytearray(path.read_bytes())
    path.write_bytes(bytes(payload))
    target = nn.mlp(3, 4, 2)
    before = target.state_dict()
    try:
        d2p.load(target, path)
    except d2p.StateDictError:
        after = target.state_dict()
        for key, value in before.items():
            np.testing.assert_array_equal(after[key], value, err_msg=f"{kind} changed {key}")
        return
    expected = d2p_io.read(path)[0]  # it loaded: then exactly what the file holds
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, expected[key])
        assert np.isfinite(value).all()


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(spec=TENSORS)
def test_reader_agrees_with_safetensors_on_valid_files(tmp_path, spec):
    arrays = arrays_of(spec)
    payload = checkpoint_bytes(arrays)
    path = tmp_path / "valid.safetensors"
    path.write_bytes(payload)
    found = d2p_io.read_checkpoint(path)
    reference = st_load(payload)
    assert list(found.state) == list(arrays)
    for name, array in reference.items():
        assert same_bits(found.state[name], array), name
        assert found.dtypes[name] == array.dtype.name


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(spec=TENSORS, data=st.data())
def test_every_truncation_is_a_state_dict_error(tmp_path, spec, data):
    payload = checkpoint_bytes(arrays_of(spec))
    cut = data.draw(st.integers(0, len(payload) - 1), label="cut")
    path = tmp_path / "cut.safetensors"
    path.write_bytes(payload[:cut])
    try:
        d2p_io.read_checkpoint(path)
    except d2p.StateDictError as exc:
        assert "save it again" in str(exc)
    else:
        raise AssertionError(f"a file cut to {cut} of {len(payload)} bytes was read")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from([*NUMPY_DTYPES, "BF16", "F8_E4M3", "F8_E5M2", "C64", "F4", "bf16", 3]),
    "shape": st.lists(st.integers(-2, 5), max_size=3) | JSON,
    "data_offsets": st.lists(st.integers(-2, 80), min_size=0, max_size=3) | JSON,
})
HEADERS = st.dictionaries(NAMES, ENTRY | JSON, max_size=4).map(
    lambda h: {"__metadata__": {**D2P_METADATA, "tied": "[]"}, **h}
) | JSON


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(header=HEADERS, data_len=st.integers(0, 96), pad=st.sampled_from([b"", b"  ", b"\x00"]))
def test_random_headers_give_a_state_dict_error_or_consistent_tensors(tmp_path, header, data_len, pad):
    text = json.dumps(header).encode() + pad
    path = tmp_path / "random.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"\x01" * data_len)
    try:
        found = d2p_io.read_checkpoint(path)
    except d2p.StateDictError:
        return
    for name, array in found.state.items():  # what was read is what the header says
        entry = header[name]
        assert list(array.shape) == entry["shape"]


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(spec=TENSORS, flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes_give_a_state_dict_error_or_the_file_as_written(tmp_path, spec, flips):
    arrays = arrays_of(spec)
    payload = bytearray(checkpoint_bytes(arrays))
    header_end = 8 + int.from_bytes(payload[:8], "little")
    for position, mask in flips:
        payload[position % len(payload)] ^= mask
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(payload))
    try:
        found = d2p_io.read_checkpoint(path)
    except d2p.StateDictError:
        return
    if all(p % len(payload) >= header_end for p, _ in flips):  # only data bytes changed
        reference = st_load(bytes(payload))
        for name, array in reference.items():
            assert same_bits(found.state[name], array), name
