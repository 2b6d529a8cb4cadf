-- End one session known by its key.
-- KEYS: 1 session key, 2 index
-- ARGV: 1 index member
-- Returns 1 when a live session was ended, 0 when it was already gone.
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
prune(KEYS[2])
settle(KEYS[2])
return n
