"""Tollgate's gateway: the OpenAI-compatible edge (``http/``), the request path (``pipeline.py``,
``call.py`` and ``stages/``), forwarding (``upstream/``), stores (``store/``), processes (``ops/``)
and the ``tollgate`` command (``cli/``)."""
