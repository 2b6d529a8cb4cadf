-- End all of a user's sessions, except one handle ('' for none).
-- KEYS: 1 index
-- ARGV: 1 session key prefix, 2 handle to keep
-- Returns the ended handles.
return end_all(KEYS[1], ARGV[1], ARGV[2])
