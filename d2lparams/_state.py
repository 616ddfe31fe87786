"""Process state shared by the neutral modules: recording and forward contexts."""

from __future__ import annotations

import contextvars

#: > 0 while d2p.backward runs the user's function
recording: contextvars.ContextVar[int] = contextvars.ContextVar("d2p_recording", default=0)
#: > 0 while a neutral module's forward runs: parameter attributes then give native tensors
in_forward: contextvars.ContextVar[int] = contextvars.ContextVar("d2p_in_forward", default=0)

#: while d2p.summary traces a network: {id(module): output shape text}; else None
tracer: contextvars.ContextVar[dict | None] = contextvars.ContextVar("d2p_tracer", default=None)


#: bumped by every change a compiled module must notice (members, hooks, modes, dtypes)
changes = [0]
#: > 0 while a compiled module's forward runs (a compiled child inside it runs as traced)
compiling: contextvars.ContextVar[int] = contextvars.ContextVar("d2p_compiling", default=0)


def changed() -> None:
    """Note a change of a module tree: compiled modules look at their structure again."""
    changes[0] += 1


def record_shape(module, out) -> None:
    """While ``d2p.summary`` traces a network: note the shape of ``module``'s output."""
    table = tracer.get()
    if table is not None:
        try:
            table[id(module)] = "(" + ", ".join(str(int(s)) for s in tuple(out.shape)) + ")"
        except (AttributeError, TypeError, ValueError):
            table[id(module)] = "?"


def check_not_recording(what) -> None:
    if recording.get():
        raise RuntimeError(
            f"cannot write {type(what).__name__} while d2p.backward is recording: the "
            "gradient would silently use the new value; write it before or after backward "
            "(for example in the optimizer step)"
        )
