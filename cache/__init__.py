"""Caches: exact response cache and prefix-cache-aware replica choice (issue #6: not built yet)."""
