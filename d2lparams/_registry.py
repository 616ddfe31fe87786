"""Backend names, aliases, entry points and the current choice.

Rules (after einops' ``_backends.py``): a framework is never imported unless a backend is
used, because it may be missing, heavy, or crash beside another one. Adapters are found
through the entry-point group ``d2lparams.backends`` (the built-in ones are declared there
too, in ``setup.cfg``) and only their metadata class is imported to answer questions about
them; the framework itself is imported with the adapter's implementation on first use.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import sys
import threading

from ._errors import BackendConflict, BackendNotAvailable

ENTRY_POINT_GROUP = "d2lparams.backends"

_lock = threading.RLock()
_classes: dict | None = None  # name -> adapter class
_instances: dict = {}  # name -> loaded adapter instance
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2lparams_backend", default=None
)
_global_choice: str | None = None


def _entry_points() -> dict:
    from importlib import metadata  # 15 ms: only when a backend is first looked up

    found: dict[str, str] = {}
    try:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep.value)
    except Exception:  # broken metadata must not break import
        pass
    return found


def _adapter_classes() -> dict:
    """``{name: metadata class}`` of every registered backend (no framework imported)."""
    global _classes
    if _classes is not None:
        return _classes
    with _lock:
        if _classes is None:
            classes = {}
            for name, target in _entry_points().items():
                module_name, _, attr = target.partition(":")
                try:
                    cls = getattr(importlib.import_module(module_name), attr)
                except Exception:  # a broken third-party plugin must not break the others
                    continue
                if getattr(cls, "name", None) == name:
                    classes[name] = cls
            _classes = classes
        return _classes


def _aliases() -> dict:
    table = {}
    for name, cls in _adapter_classes().items():
        table[name] = name
        for alias in getattr(cls, "aliases", ()):
            table.setdefault(alias, name)
    return table


def canonical_name(name: str) -> str:
    """Return the backend name for ``name`` or one of its aliases.

    Raises:
        ValueError: ``name`` is no known backend or alias.
    """
    if not isinstance(name, str):
        raise TypeError(f"a backend name must be a str, got {type(name).__name__}: {name!r}")
    table = _aliases()
    key = name.strip().lower()
    if key not in table:
        known = ", ".join(f"{a!r}" for a in sorted(table))
        raise ValueError(f"unknown backend {name!r}; known names and aliases: {known}")
    return table[key]


def list_backends() -> list[str]:
    """Sorted names of every registered backend (built-in and entry-point plugins).

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.list_backends()
        ['jax', 'mxnet', 'paddle', 'tensorflow', 'torch']
    """
    return sorted(_adapter_classes())


def _installed(cls) -> bool:
    for mod in cls.import_names[:1]:
        if mod in sys.modules:
            return sys.modules[mod] is not None
        try:
            if importlib.util.find_spec(mod) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def available_backends() -> list[str]:
    """The registered backends whose framework is installed, found without importing it.

    Examples:
        >>> import d2lparams as d2p
        >>> set(d2p.available_backends()) <= set(d2p.list_backends())
        True
    """
    return [n for n in list_backends() if _installed(_adapter_classes()[n])]


def _env_choice() -> str | None:
    value = os.environ.get("D2LPARAMS_BACKEND", "").strip()
    return canonical_name(value) if value else None


def _choice() -> str:
    for chosen in (_context_choice.get(), _global_choice):
        if chosen is not None:
            return chosen
    env = _env_choice()
    if env is not None:
        return env
    classes = _adapter_classes()
    available = sorted(available_backends(), key=lambda n: (classes[n].default_priority, n))
    if available:
        return available[0]
    raise BackendNotAvailable(
        "no deep-learning framework is installed; install one, for example "
        'pip install "d2lparams[torch]" (extras: torch, tensorflow, mxnet, paddle, all)'
    )


def get_backend() -> str:
    """The name of the backend new objects are built on: an explicit ``use_backend``, then
    ``set_backend``, then ``D2LPARAMS_BACKEND``, then the first installed backend by each
    backend's ``default_priority`` (torch, tensorflow, paddle, mxnet, ...).

    Examples:
        >>> import d2lparams as d2p
        >>> with d2p.use_backend("torch"):
        ...     d2p.get_backend()
        'torch'
    """
    return _choice()


def set_backend(name: str) -> str:
    """Choose the backend for new modules, tensors and parameters in this process.

    The framework is imported now, so that a missing one fails here. Existing modules keep
    the backend they were built on.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.set_backend("pytorch")
        'torch'
    """
    global _global_choice
    name = canonical_name(name)
    adapter(name)
    _global_choice = name
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Use ``name`` inside the block only (per thread and task); restores the previous choice.

    Examples:
        >>> import d2lparams as d2p
        >>> with d2p.use_backend("torch"):
        ...     net = d2p.nn.Linear(2, 3)
        >>> net.backend
        'torch'
    """
    name = canonical_name(name)
    adapter(name)
    token = _context_choice.set(name)
    try:
        yield name
    finally:
        _context_choice.reset(token)


def _conflicts(cls) -> None:
    """Raise ``BackendConflict`` if importing ``cls``'s framework now would crash the process.

    The hazard is the import itself: a framework that is already imported (for instance
    paddle imported before tensorflow, the safe order) has nothing left to crash, whatever
    was imported after it.
    """
    if cls.import_names and all(sys.modules.get(m) is not None for m in cls.import_names):
        return
    for other_module, message in getattr(cls, "unsafe_after", {}).items():
        if other_module in sys.modules:
            raise BackendConflict(message)


def adapter(name: str | None = None):
    """The loaded adapter for ``name`` (or the current backend), importing its framework."""
    name = canonical_name(name) if name is not None else _choice()
    inst = _instances.get(name)
    if inst is not None:
        return inst
    with _lock:
        inst = _instances.get(name)
        if inst is not None:
            return inst
        cls = _adapter_classes().get(name)
        if cls is None:
            raise ValueError(f"backend {name!r} is registered but its adapter failed to import")
        if not _installed(cls):
            raise BackendNotAvailable(
                f"backend {name!r} needs {cls.framework_name}, which is not installed here; "
                f'install it with: pip install "d2lparams[{cls.extra}]"'
            )
        _conflicts(cls)
        try:
            inst = cls.implementation_class()()
        except ImportError as exc:
            raise BackendNotAvailable(
                f"backend {name!r}: importing {cls.framework_name} failed ({exc}); "
                f'reinstall it with: pip install "d2lparams[{cls.extra}]"'
            ) from exc
        _instances[name] = inst
        return inst


def loaded_adapters() -> list:
    """The adapters whose framework d2lparams has imported in this process."""
    return list(_instances.values())


def adapter_class(name: str):
    return _adapter_classes()[canonical_name(name)]


def preload(*names: str) -> list[str]:
    """Import the given backends' frameworks in an order that is safe in one process.

    Importing ``paddle`` after ``tensorflow`` segfaults; ``preload("tensorflow", "paddle")``
    imports paddle first. Returns the names in the order they were loaded.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.preload("torch")
        ['torch']
    """
    wanted = [canonical_name(n) for n in (names or available_backends())]
    ordered = sorted(
        dict.fromkeys(wanted), key=lambda n: getattr(_adapter_classes()[n], "preload_rank", 50)
    )
    for name in ordered:
        adapter(name)
    return ordered


_type_backend: dict = {}


def backend_of_type(obj) -> str | None:
    """The backend a native tensor or model belongs to, from its type's module (no import).

    Where several backends share a framework (a plugin built on a built-in adapter), a
    loaded one is preferred, then the lowest ``default_priority``.
    """
    kind = type(obj)
    names = _type_backend.get(kind)
    if names is None:
        names = []
        for klass in kind.__mro__:
            root = (klass.__module__ or "").partition(".")[0]
            names = [n for n, cls in _adapter_classes().items() if root in cls.tensor_modules]
            if names:
                break
        classes = _adapter_classes()
        names.sort(key=lambda n: (classes[n].default_priority, n))
        _type_backend[kind] = names
    if len(names) > 1:
        for name in names:
            if name in _instances:
                return name
    return names[0] if names else None


def backend_of_module(module: str) -> str | None:
    """The backend whose framework is imported as ``module`` (no import)."""
    for name, cls in _adapter_classes().items():
        if module in cls.import_names:
            return name
    return None


def backend_of(obj) -> str:
    """The backend of a native tensor or model, a ``Parameter`` or a neutral module.

    Examples:
        >>> import d2lparams as d2p
        >>> d2p.backend_of(d2p.ones(1, backend="torch"))
        'torch'
    """
    name = getattr(obj, "backend", None) if hasattr(obj, "_adapter") else None
    name = name or backend_of_type(obj)
    if name is None:
        raise TypeError(
            f"{type(obj).__module__}.{type(obj).__name__} belongs to no registered backend; "
            f"known: {', '.join(list_backends())}"
        )
    return name
