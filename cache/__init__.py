"""Caches, the pure parts: the exact response cache's rules and prefix-aware replica choice."""
