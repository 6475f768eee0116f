"""Tollgate's edge: the OpenAI-compatible API, tenants and keys, and calls to backends."""
