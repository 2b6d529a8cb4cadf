-- Read a counter without counting.
-- KEYS: 1 counter
-- Returns {count (0 when absent), ms until the window closes (negative when absent)}.
return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}
