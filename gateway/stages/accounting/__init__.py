"""Accounting: rate limits and budgets enforced in Redis, the per-call ledger, and cost reports.

Everything a tenant does lives under one Redis hash tag, ``{t:<tenant>}``, so the keys one call
touches share a slot and each step is one atomic script even on Redis Cluster.
"""
