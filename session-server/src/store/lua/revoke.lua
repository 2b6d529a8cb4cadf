-- End one session known by its digest, with its app data; prune the user's other expired sessions on the way.
-- KEYS: 1 sessions hash, 2 barrier
-- ARGV: 1 digest (the field)
-- Returns 1 when a live session was ended, 0 when it was already gone (or expired).
barrier(KEYS[2])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local ended = 0
if old then
  redis.call('HDEL', KEYS[1], ARGV[1], data_field(ARGV[1]))
  if expiry(old) >= now_ms() then
    ended = 1
  end
end
settle(KEYS[1], prune(KEYS[1]))
return ended
