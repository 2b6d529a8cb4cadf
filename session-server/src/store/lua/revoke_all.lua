-- End all of a user's sessions, except one handle ('' for none).
-- KEYS: 1 sessions hash, 2 barrier
-- ARGV: 1 handle to keep (16 raw bytes, or '')
-- Returns the ended handles.
barrier(KEYS[2])
return end_all(KEYS[1], ARGV[1])
