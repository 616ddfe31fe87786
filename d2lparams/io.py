"""Saving and loading checkpoints across frameworks.

A checkpoint is a safetensors file with canonical names and the canonical ``(in, out)``
layout, so a file saved from a network on one backend loads into the same architecture on
any other. Metadata: ``format`` (``d2lparams``), ``format_version``, ``layout``
(``canonical``), ``source_backend``, ``order`` (every state name, in order) and ``tied``
(JSON groups of names sharing storage; a tied tensor is stored once, under the group's first
name).

Writing (:func:`save`) is atomic and crash safe:

* the file is written to a temporary sibling ``.d2lparams-<host>-<pid>-<random>.tmp``,
  flushed to disk, renamed over the target, and the directory entry is flushed too; a crash
  at any moment leaves either the old file or the new one, never a mix;
* the temporary file is removed when the save fails, is interrupted (``KeyboardInterrupt``)
  or, in the main thread, when the process receives SIGTERM; a save killed outright
  (SIGKILL, power loss) leaves it behind, and the next save into that directory removes it
  once its writer is provably gone (its pid is not alive on this host);
* the new file keeps the permission bits of the file it replaces (a new file gets
  ``0o666`` minus the umask, like ``open(path, "w")``);
* a symbolic link at ``path`` is followed: its target is replaced atomically and the link
  stays.

Reading (:func:`load`) accepts regular files only and reads the header first: its length
bounds everything read after it, so a device, a FIFO or a corrupt length is refused before
any large read. Every header entry is checked (dtype, shape, offsets that tile the data
exactly, no duplicate names) and so is the metadata (``order``, ``tied``); any problem is a
:class:`~d2lparams.StateDictError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import signal
import socket
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ._checks import InvalidValue, count_nonfinite, float32_array
from ._errors import StateDictError
from ._tensor import as_array
from .introspect import tied_parameters
from .nn.module import Module

FORMAT = "d2lparams"
FORMAT_VERSION = "1"
LAYOUT = "canonical"
#: the header key safetensors reserves for metadata: no tensor may be named so
RESERVED_KEY = "__metadata__"
#: safetensors' own bound on the header length
MAX_HEADER = 100_000_000

__all__ = ["load", "save"]

M = TypeVar("M", bound=Module)


def _path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a path is a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


# -- dtypes ------------------------------------------------------------------------------------

def _e4m3_table() -> np.ndarray:
    """The 256 float32 values of float8 E4M3 (the "FN" variant: no inf, NaN at 0x7f/0xff)."""
    bits = np.arange(256)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exponent = (bits >> 3) & 0xF
    mantissa = bits & 0x7
    value = np.where(exponent == 0, mantissa / 8 * 2.0**-6, (1 + mantissa / 8) * 2.0 ** (exponent - 7.0))
    value = sign * value
    value[(exponent == 0xF) & (mantissa == 0x7)] = np.nan
    return value.astype(np.float32)


def _bf16(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _f8_e5m2(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint16) << 8).view(np.float16).astype(np.float32)


_E4M3: list = []


def _f8_e4m3(raw: np.ndarray) -> np.ndarray:
    if not _E4M3:
        _E4M3.append(_e4m3_table())
    return _E4M3[0][raw]


@dataclass(frozen=True)
class _DType:
    name: str  # d2lparams' (and NumPy's) name: what messages and Parameter.dtype say
    stored: str  # NumPy dtype of the bytes, little-endian
    decode: object = None  # bytes -> the value as NumPy can hold it (float32 for bf16/f8)


#: every safetensors dtype d2lparams reads; NumPy lacks bfloat16 and float8, which are widened
#: to float32 exactly (every such value is a float32 value)
DTYPES = {
    "F64": _DType("float64", "<f8"), "F32": _DType("float32", "<f4"),
    "F16": _DType("float16", "<f2"), "BF16": _DType("bfloat16", "<u2", _bf16),
    "F8_E5M2": _DType("float8_e5m2", "u1", _f8_e5m2),
    "F8_E4M3": _DType("float8_e4m3fn", "u1", _f8_e4m3),
    "I64": _DType("int64", "<i8"), "I32": _DType("int32", "<i4"), "I16": _DType("int16", "<i2"),
    "I8": _DType("int8", "i1"), "U64": _DType("uint64", "<u8"), "U32": _DType("uint32", "<u4"),
    "U16": _DType("uint16", "<u2"), "U8": _DType("uint8", "u1"), "BOOL": _DType("bool", "?"),
}


# -- reading -----------------------------------------------------------------------------------

class _Malformed(Exception):
    """The bytes are not a valid safetensors file (the message says where)."""


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` found in a file.

    Attributes:
        state: every state name (tied names expanded) -> array (float32 for bfloat16/float8).
        metadata: the file's metadata (str -> str).
        dtypes: every state name -> the dtype it is stored in (``"float32"``, ``"bfloat16"``).
    """

    state: OrderedDict
    metadata: dict
    dtypes: dict


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _Malformed(f"the header names {key!r} twice")
        seen[key] = value
    return seen


def _parse_header(raw: bytes, data_len: int) -> tuple[dict, dict]:
    """``(metadata, {name: (dtype, shape, begin, end)})`` of a header whose data section has
    ``data_len`` bytes; every offset is checked against it."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Malformed(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _Malformed(f"the header is a JSON {type(header).__name__}, not an object")
    meta = header.pop(RESERVED_KEY, None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _Malformed(f"{RESERVED_KEY} must map names to strings, got {str(meta)[:200]}")
    entries = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _Malformed(f"tensor {name!r}: expected dtype, shape and data_offsets, got {str(entry)[:200]}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _Malformed(
                f"tensor {name!r} has dtype {dtype!r}, which d2lparams does not read (it reads "
                f"{', '.join(DTYPES)})"
            )
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise _Malformed(f"tensor {name!r} has shape {str(shape)[:100]}, not a list of sizes")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len):
            raise _Malformed(
                f"tensor {name!r} has data_offsets {str(offsets)[:100]} outside the "
                f"{data_len} data bytes"
            )
        size = int(np.prod(shape, dtype=object)) * np.dtype(DTYPES[dtype].stored).itemsize
        if offsets[1] - offsets[0] != size:
            raise _Malformed(
                f"tensor {name!r}: {dtype} of shape {tuple(shape)} takes {size} bytes, its "
                f"offsets span {offsets[1] - offsets[0]}"
            )
        entries[name] = (dtype, tuple(shape), offsets[0], offsets[1])
    position = 0  # the tensors must tile the data section: no gap, no overlap, no tail
    for _, _, begin, end in sorted(entries.values(), key=lambda e: (e[2], e[3])):
        if begin != position:
            raise _Malformed(f"the tensors' bytes overlap or leave a gap at byte {position}")
        position = end
    if position != data_len:
        raise _Malformed(f"the tensors take {position} bytes, the data section has {data_len}")
    return meta, entries


def _read_exactly(fh, count: int) -> bytearray:
    buffer = bytearray(count)
    view = memoryview(buffer)
    done = 0
    while done < count:
        got = fh.readinto(view[done:])
        if not got:
            raise _Malformed(f"the file ended after {done} of {count} expected bytes")
        done += got
    return buffer


_KINDS = [(stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket")]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _json_list(meta: dict, key: str, path: str):
    text = meta.get(key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StateDictError(
            f"{path!r} has malformed metadata {key!r} (not JSON: {exc}); save it again with "
            "d2p.save(net, path)"
        ) from None


def _state_names(meta: dict, tensors: dict, path: str) -> tuple[list, dict]:
    """The state names in order and ``{alias: stored name}``, from checked ``order``/``tied``."""
    def malformed(key, why):
        return StateDictError(
            f"{path!r} has malformed metadata {key!r}: {why}; save it again with "
            "d2p.save(net, path)"
        )

    tied = _json_list(meta, "tied", path)
    tied = [] if tied is None else tied
    if not isinstance(tied, list) or not all(
        isinstance(g, list) and len(g) >= 2 and all(isinstance(n, str) for n in g) for g in tied
    ):
        raise malformed("tied", f"expected a list of groups of two or more names, got {str(tied)[:200]}")
    alias: dict = {}
    for group in tied:
        if group[0] not in tensors:
            raise malformed("tied", f"the group {group} starts with {group[0]!r}, which the file does not store")
        for name in group:
            if name in alias or (name in tensors and name != group[0]):
                raise malformed("tied", f"{name!r} is in two groups, or stored although it is an alias")
            alias[name] = group[0]
    order = _json_list(meta, "order", path)
    if order is None:
        order = list(tensors) + [n for n in alias if n not in tensors]
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        raise malformed("order", f"expected a list of names, got {str(order)[:200]}")
    if len(set(order)) != len(order):
        raise malformed("order", "a name is listed twice")
    known = set(tensors) | set(alias)
    lacking = [n for n in order if n not in known]
    if lacking:
        raise StateDictError(f"{path!r} lacks the tensor(s) {lacking[:10]} its metadata names")
    unlisted = [n for n in known if n not in set(order)]
    if unlisted:
        raise malformed("order", f"the file stores {sorted(unlisted)[:10]}, which it does not list")
    return order, alias


def read_checkpoint(path) -> Checkpoint:
    """Read and check a checkpoint written by :func:`save`.

    Raises:
        StateDictError: the path is missing or not a regular file; the file is truncated,
            not safetensors, or not a d2lparams checkpoint in the canonical layout; or its
            header or metadata are malformed.
    """
    path = _path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open descriptor
        # then decides, so the file cannot be swapped between the check and the read.
        fd = os.open(path, flags)
    except OSError as exc:
        raise StateDictError(f"cannot read checkpoint {path!r}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateDictError(
                f"{path!r} is a {_kind(st.st_mode)}, not a regular file; d2p.load reads a "
                "checkpoint file written by d2p.save(net, path)"
            )
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb", buffering=0) as fh:
        size = st.st_size
        try:
            if size < 8:
                raise _Malformed(f"a safetensors file has at least 8 bytes, this has {size}")
            header_len = int.from_bytes(_read_exactly(fh, 8), "little")
            if not 2 <= header_len <= min(size - 8, MAX_HEADER):
                raise _Malformed(
                    f"its header length field says {header_len} bytes, the file has {size - 8} "
                    "after it"
                )
            raw_header = bytes(_read_exactly(fh, header_len))
            data_len = size - 8 - header_len
            meta, entries = _parse_header(raw_header, data_len)
            data = _read_exactly(fh, data_len)
        except _Malformed as exc:
            raise StateDictError(
                f"{path!r} is not a readable safetensors file ({size} bytes: truncated or "
                f"another format: {exc}); save it again with d2p.save(net, path)"
            ) from None
        except OSError as exc:
            raise StateDictError(f"cannot read checkpoint {path!r}: {exc.strerror}") from exc
    if meta.get("format") != FORMAT or meta.get("layout") != LAYOUT:
        raise StateDictError(
            f"{path!r} is a safetensors file but not a d2lparams checkpoint in the canonical "
            f"(in, out) layout (metadata: {str(meta)[:300]}); a native torch/mxnet file stores "
            "weights as (out, in). Load it with the framework, then port it with "
            "d2p.wrap(native).state_dict() and d2p.save"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise StateDictError(
            f"{path!r} has format version {meta.get('format_version')!r}; this d2lparams "
            f"reads version {FORMAT_VERSION}: upgrade d2lparams"
        )
    tensors, dtypes = {}, {}
    for name, (dtype, shape, begin, end) in entries.items():
        kind = DTYPES[dtype]
        stored = np.dtype(kind.stored)
        if end == begin:
            array = np.empty(shape, stored)
        else:
            array = np.frombuffer(data, stored, (end - begin) // stored.itemsize, begin).reshape(shape)
        if kind.decode is not None:
            array = kind.decode(array)  # type: ignore[operator]
        tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=False)
        dtypes[name] = kind.name
    order, alias = _state_names(meta, tensors, path)
    state = OrderedDict((name, tensors[alias.get(name, name)]) for name in order)
    return Checkpoint(state, meta, {name: dtypes[alias.get(name, name)] for name in order})


def read(path) -> tuple[OrderedDict[str, np.ndarray], dict]:
    """The full state (tied names expanded) and the metadata of a checkpoint file.

    Raises:
        StateDictError: see :func:`read_checkpoint`.
    """
    found = read_checkpoint(path)
    return found.state, found.metadata


# -- writing -----------------------------------------------------------------------------------

_TMP = re.compile(r"^\.d2lparams-([0-9a-f]{8})-([0-9]{1,10})-[0-9a-f]{16}\.tmp$")
# this process's temporary files being written: name -> path. Judged by name (unique: pid and
# 64 random bits), as one directory may be spelled in several ways.
_in_flight: dict = {}
# re-entrant: the SIGTERM handler runs in the main thread, perhaps while it holds the lock
_in_flight_lock = threading.RLock()
_tag: list = []


def _host_tag() -> str:
    """Who may judge a temporary file: this host and pid namespace. A pid only means
    something inside its namespace, so files written from another machine or container
    sharing the directory are never judged stale here."""
    if not _tag:
        ident = socket.gethostname()
        with contextlib.suppress(OSError):
            ident += f":{os.stat('/proc/self/ns/pid').st_ino}"
        _tag.append(hashlib.sha256(ident.encode()).hexdigest()[:8])
    return _tag[0]


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # the caller checks this process's own saves by name
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or not provably gone
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the temporary files of saves into ``directory`` whose writer is provably gone:
    written on this host and pid namespace, by a process that no longer exists, or by this
    process but not by one of its saves in flight. Returns the removed paths; never raises.
    """
    if os.name != "posix":  # os.kill(pid, 0) is no existence test elsewhere
        return []
    removed = []
    tag, me = _host_tag(), os.getpid()
    try:
        names = [e.name for e in os.scandir(directory) if e.name.startswith(".d2lparams-")]
    except OSError:
        return []
    for name in names:
        match = _TMP.match(name)
        if match is None or match.group(1) != tag:
            continue
        full = os.path.join(directory, name)
        pid = int(match.group(2))
        with _in_flight_lock:
            busy = name in _in_flight
        if busy or (pid != me and (pid <= 0 or _writer_alive(pid))):
            continue
        try:
            if not stat.S_ISREG(os.lstat(full).st_mode):
                continue
            os.unlink(full)
            removed.append(full)
        except OSError:  # removed meanwhile by another saver, or not ours to remove
            continue
    return removed


def _on_sigterm(signum, frame) -> None:
    with _in_flight_lock:
        paths = list(_in_flight.values())
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # the default action: terminate, as if never caught


@contextlib.contextmanager
def _cleanup_on_sigterm():
    """While a save runs in the main thread, SIGTERM removes every temporary file of this
    process before the process terminates as it would have. A handler the program installed
    itself is left alone (whatever it raises unwinds the save, which removes its file); so is
    an ignored SIGTERM (the save goes on)."""
    if (not hasattr(signal, "SIGTERM")
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: the NumPy dtypes a checkpoint stores as they are (anything else is stored as float32)
_KEPT = (np.dtype(np.float64), np.dtype(np.float16))


def _target_dtypes(module) -> dict:
    """Every state name of ``module`` -> the dtype of the parameter or buffer it names."""
    return {name: module._target_dtype(member, is_param)
            for name, (member, is_param) in module._state_targets().items()}


def _retype(payload: bytes, dtypes: dict) -> bytes:
    """A safetensors payload with the header's dtype of some tensors replaced (the bytes
    already hold that dtype: bfloat16 written as its 16-bit patterns)."""
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + size])
    for name, dtype in dtypes.items():
        header[name]["dtype"] = dtype
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return len(text).to_bytes(8, "little") + text + payload[8 + size:]


def _checked_state(state_dict) -> OrderedDict:
    """A user's state dict as arrays (float64 and float16 kept, anything else float32; 0-d
    kept), or a clear error before any write."""
    out: OrderedDict = OrderedDict()
    for key, value in state_dict.items():
        if isinstance(value, np.ndarray) and value.dtype in _KEPT:
            out[key] = value
            continue
        try:
            array = float32_array(value)
        except InvalidValue as exc:
            error = ValueError if exc.kind == "complex" else TypeError
            raise error(f"d2p.save: state dict entry {key!r}: {exc.reason}; nothing was written") from None
        if array is not value and count_nonfinite(array):
            source = as_array(value)  # convertible: float32_array succeeded
            before = 0 if source.dtype.kind != "f" else int(np.count_nonzero(~np.isfinite(source)))
            if count_nonfinite(array) > before:
                raise ValueError(
                    f"d2p.save: state dict entry {key!r} holds numbers beyond float32's range "
                    f"±{np.finfo(np.float32).max:.4g}, which a checkpoint (float32) would store "
                    "as inf; scale or clip them first; nothing was written"
                )
        out[key] = array
    return out


def _check_keys(names) -> None:
    for key in names:
        if not isinstance(key, str) or not key:
            raise TypeError(f"d2p.save: state dict keys are non-empty str, got {key!r}; nothing was written")
        if key == RESERVED_KEY:
            raise ValueError(
                f"d2p.save: a tensor cannot be named {RESERVED_KEY!r}: safetensors reserves "
                "that header key for the file's metadata; rename the parameter or buffer; "
                "nothing was written"
            )


def _target(path: str) -> str:
    """The file to replace: ``path``, or the file a symbolic link at ``path`` points to."""
    target = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                errno.ENOENT, f"d2p.save: the directory {directory!r} does not exist; create it "
                "first (os.makedirs(directory, exist_ok=True))", path,
            ) from None
        return target
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(
            errno.EISDIR, f"d2p.save writes a file, and {path!r} is a directory; pass a file path "
            "such as os.path.join(directory, 'net.safetensors')", path,
        )
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"d2p.save: {path!r} is a {_kind(mode)}, not a regular file; a checkpoint is "
            "written atomically by replacing a file, so pass the path of a regular file"
        )
    return target


def _write_atomically(payload: bytes, target: str) -> None:
    directory = os.path.dirname(target)
    remove_stale_temporaries(directory)
    try:
        keep_mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        keep_mode = None  # a new file: 0o666 minus the umask, applied by os.open
    name = f".d2lparams-{_host_tag()}-{os.getpid()}-{os.urandom(8).hex()}.tmp"
    tmp = os.path.join(directory, name)
    with _in_flight_lock:  # registered before it exists: another saver never judges it stale
        _in_flight[name] = tmp
    try:
        with _cleanup_on_sigterm():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(tmp, flags, 0o600 if keep_mode is not None else 0o666)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
                if keep_mode is not None:
                    os.fchmod(fd, keep_mode)  # not subject to the umask: exactly the old bits
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        with _in_flight_lock:
            _in_flight.pop(name, None)


def save(module_or_state_dict, path) -> str:
    """Write a module's (or a state dict's) tensors to ``path`` atomically; returns the path.

    The file keeps the permission bits of the file it replaces; a symbolic link at ``path``
    is followed (its target is replaced, the link stays). Every check runs before anything
    is written: a failing call leaves the disk as it was.

    Raises:
        TypeError: not a module or a state dict, a key that is not a str, or a value that
            is not numeric.
        ValueError: a tensor named ``"__metadata__"`` (safetensors reserves it), complex
            values, or values beyond float32's range.
        OSError: the directory is not writable (nothing is left behind).

    Examples:
        >>> import os, tempfile, d2lparams as d2p
        >>> net = d2p.nn.mlp(4, 8, 1, backend="torch")
        >>> path = d2p.save(net, os.path.join(tempfile.mkdtemp(), "mlp.safetensors"))
        >>> twin = d2p.load(d2p.nn.mlp(4, 8, 1, backend="torch"), path)
    """
    from safetensors.numpy import save as st_save

    path = _path(path)
    if isinstance(module_or_state_dict, Module):
        module = module_or_state_dict
        state = module.state_dict()
        _check_keys(state)
        tied = tied_parameters(module)
        source = module.backend
        bfloat16_names = {k for k, dtype in _target_dtypes(module).items() if dtype == "bfloat16"}
    elif hasattr(module_or_state_dict, "items"):
        _check_keys(list(module_or_state_dict.keys()))
        state = _checked_state(module_or_state_dict)
        tied, source, bfloat16_names = [], "unknown", set()
    else:
        raise TypeError(
            f"d2p.save takes an nn.Module or a state dict, got {type(module_or_state_dict).__name__}"
        )
    skip = {name for group in tied for name in group[1:]}
    # np.require keeps a 0-d array 0-d (np.ascontiguousarray would make it (1,)); float64 and
    # float16 are stored as they are, everything else as float32
    tensors = {k: np.require(v, v.dtype if v.dtype in _KEPT else np.float32, "C")
               for k, v in state.items() if k not in skip}
    bfloat16 = [k for k in tensors if k in bfloat16_names]
    for k in bfloat16:  # NumPy holds bfloat16 in float32: store the upper 16 bits, exactly
        tensors[k] = (tensors[k].view(np.uint32) >> 16).astype("<u2")
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "layout": LAYOUT,
        "source_backend": source, "tied": json.dumps(tied),
        "order": json.dumps(list(state)),
    }
    payload = st_save(tensors, metadata=metadata)
    if bfloat16:
        payload = _retype(payload, {k: "BF16" for k in bfloat16})
    header_len = int.from_bytes(payload[:8], "little")
    try:  # the bytes about to replace a good file must read back
        _parse_header(payload[8:8 + header_len], len(payload) - 8 - header_len)
    except _Malformed as exc:  # pragma: no cover - a safetensors bug; refuse to write it
        raise RuntimeError(f"d2p.save produced an unreadable file ({exc}); nothing was written") from None
    _write_atomically(payload, _target(path))
    return path


def load(module: M, path: str | os.PathLike, strict: bool = True, *,
         allow_nonfinite: bool = False, cast: bool = False) -> M:
    """Load a checkpoint written by :func:`save` into ``module`` (any backend); the same
    atomic checks as ``load_state_dict``. Returns the module.

    Args:
        module: the network to load into.
        path: a regular file (``str`` or ``os.PathLike``).
        strict: as in ``load_state_dict``: ``False`` skips missing and unexpected keys.
        allow_nonfinite: load NaN and inf values as they are (refused by default).
        cast: load tensors stored in another dtype than the model's (float64, float16,
            bfloat16, float8, integers) by converting them; without it such a tensor is a
            ``StateDictError`` naming its dtype.

    Raises:
        StateDictError: unreadable file, wrong layout, keys/shapes that do not fit, values
            that are not finite, or a dtype that needs ``cast=True``; the module is unchanged.
    """
    if not isinstance(module, Module):
        raise TypeError(f"d2p.load takes an nn.Module first, got {type(module).__name__}")
    found = read_checkpoint(path)
    if not cast:
        targets = _target_dtypes(module)
        wrong = {
            key: f"stored as {dtype}, the model holds {targets[key]}"
            for key, dtype in found.dtypes.items() if key in targets and dtype != targets[key]
        }
        if wrong:
            shown = ", ".join(f"{k}: {why}" for k, why in list(wrong.items())[:10])
            raise StateDictError(
                f"{type(module).__name__}: nothing was loaded from {os.fspath(path)!r}; dtype "
                f"mismatch: {shown}. Fix: pass cast=True to convert to the model's dtype "
                "(widening is exact; float64 into float32 rounds to the nearest float32), or "
                "convert the model first (model.to(dtype))",
                invalid=wrong,
            )
    module.load_state_dict(found.state, strict=strict, allow_nonfinite=allow_nonfinite,
                           cast=True)
    return module
