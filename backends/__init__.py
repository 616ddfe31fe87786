"""One adapter per framework, installed as ``d2lparams.backends``.

Importing this package, or any adapter module in it, imports no framework: each adapter
imports its framework in :meth:`~d2lparams.backends.base.Backend.load`.
"""
