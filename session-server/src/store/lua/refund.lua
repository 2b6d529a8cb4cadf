-- Take back one hit of a counter: never below zero, never opens a window.
-- KEYS: 1 counter
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
