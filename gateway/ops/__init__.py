"""Processes: ``tollgate serve``, first-run bootstrap, the embedded Valkey and the demo stack."""
