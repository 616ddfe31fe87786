"""The errors d2lparams raises of its own."""


class D2LParamsError(Exception):
    """Base class of every error that is d2lparams' own."""


class BackendNotAvailable(D2LParamsError, ImportError):
    """A known backend whose framework cannot be imported here."""


class BackendConflict(D2LParamsError, RuntimeError):
    """Importing a framework now would crash the process (a known import-order hazard)."""


class DeferredInitializationError(D2LParamsError, RuntimeError):
    """A lazy layer's parameters were touched before their shape was known."""


class StateDictError(D2LParamsError, ValueError, RuntimeError):
    """A state dict or checkpoint does not fit the module; nothing was written.

    It is also a ``RuntimeError``, what PyTorch's ``load_state_dict`` raises, so code
    written for PyTorch (``except RuntimeError``) catches it.

    Attributes:
        missing: keys the module has and the state lacks.
        unexpected: keys the state has and the module lacks.
        mismatched: ``{key: (expected_shape, actual_shape)}``.
        invalid: ``{key: reason}`` for values that cannot be loaded as they are (not
            numeric, complex, NaN/inf without ``allow_nonfinite=True``, a dtype that needs
            ``cast=True``).
        conflicting: groups of keys that name one tied parameter but carry different values.
    """

    def __init__(self, message, missing=(), unexpected=(), mismatched=None, *, invalid=None,
                 conflicting=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = dict(mismatched or {})
        self.invalid = dict(invalid or {})
        self.conflicting = [list(group) for group in conflicting]
