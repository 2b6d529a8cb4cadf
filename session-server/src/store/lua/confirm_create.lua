-- The second step of a login that evicted sessions (the per-user cap): before the login is
-- acknowledged, its write (the new session and the evictions, one atomic step) must be on a
-- replica. The `WAIT` pipelined after this script confirms it only if this node holds it, so
-- the script reports whether the new session is here.
-- KEYS: 1 sessions hash, 2 barrier
-- ARGV: 1 digest of the new session (the field)
-- Returns 1 when the session is here, 0 when it is not (lost in a failover, or ended since).
barrier(KEYS[2])
return redis.call('HEXISTS', KEYS[1], ARGV[1])
