-- Count one hit in a fixed window that opens at the first hit.
-- KEYS: 1 counter ; ARGV: 1 window ms
-- Returns {count, ms until the window closes}.
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
