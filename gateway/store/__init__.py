"""State in Redis: tenants and keys, the Redis client, and the request path's pipelined connection."""
