"""Pricing: API price tables and the roofline/KV-cache model of self-hosted engines (pure functions)."""
