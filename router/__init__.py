"""Router: the cheap-or-flagship decision and the cascade (issue #4: not built yet)."""
