"""One adapter package per framework, installed as ``d2lparams.backends``.

``d2lparams.backends.<name>`` declares a backend's metadata and imports no framework; its
``adapter`` module (imported when the backend is first used) implements the protocol of
:mod:`d2lparams.backends.base` and imports the framework.
"""
