"""Router: the cheap-or-flagship decision. Offline training and evaluation are here; the
request-path decision, live thresholds and the cascade are still to come (issue #4)."""
