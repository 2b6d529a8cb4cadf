-- A session's record, read so that the answer can be confirmed by replicas: the barrier moves
-- the replication offset past everything this read saw, and the `WAIT` pipelined after it
-- confirms that. For a logout whose session is already gone: "gone" must not be acknowledged
-- while it holds only on this node (see store/replication.rs).
-- KEYS: 1 sessions hash, 2 barrier
-- ARGV: 1 digest (the field)
-- Returns the record, or nil.
barrier(KEYS[2])
return redis.call('HGET', KEYS[1], ARGV[1])
