-- Set a user's disabled flag and advance their credential version; disabling ends every session
-- in the same step.
-- KEYS: 1 user hash, 2 sessions hash, 3 barrier
-- ARGV: 1 '1' (disable) | '0' (enable)
-- Returns the ended handles, or nil for an unknown user.
barrier(KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'v', 1)
if ARGV[1] == '1' then
  return end_all(KEYS[2], '')
end
return {}
