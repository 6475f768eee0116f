"""The request path's stages, one adapter per core package and named after it: ``auth``,
``moderation``, ``router``, ``prefix``, ``accounting``, ``cache``, ``cascade``, ``pricing`` and
``labels``. Each takes values and returns values; ``pipeline.py`` calls them in order."""
