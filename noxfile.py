"""nox sessions (``pip install nox``, or the ``test`` extra).

``nox -s alone`` runs the whole test suite once per backend, each in a fresh virtual
environment that holds d2lparams and that one framework only: it proves that no backend
needs another framework installed. One backend: ``nox -s "alone(backend='paddle')"``;
arguments after ``--`` go to pytest (``nox -s alone -- -k init``).
"""

from __future__ import annotations

import nox

BACKENDS = ["torch", "tensorflow", "mxnet", "paddle", "jax"]

# Prints the other frameworks importable in the session's environment (there must be none).
OTHER_FRAMEWORKS = f"""
import importlib.util, sys
print(" ".join(m for m in {tuple(BACKENDS)!r} if m != sys.argv[1] and importlib.util.find_spec(m)))
"""

nox.options.sessions = ["alone"]
nox.options.reuse_existing_virtualenvs = False


@nox.session(name="alone")
@nox.parametrize("backend", BACKENDS)
def alone(session: nox.Session, backend: str) -> None:
    """The test suite with d2lparams and one framework installed."""
    session.install("-e", f".[{backend},test]")
    others = (session.run("python", "-c", OTHER_FRAMEWORKS, backend, silent=True) or "").strip()
    if others:
        session.error(f"the {backend} environment also holds {others}: the run would not prove "
                      f"that {backend} works alone; check the [{backend}] extra in setup.cfg")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "-x", *session.posargs)
