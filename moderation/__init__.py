"""Moderation: prompt and response checks (issue #6: not built yet)."""
