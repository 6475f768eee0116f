"""Talking to backends: the pool of backends and replicas, the transport seam, forwarding with
retries and fallbacks, stream relaying, and the engines' live load."""
