-- Replace a password hash if it is still the expected one, and end sessions in the same step.
-- KEYS: 1 user hash, 2 index
-- ARGV: 1 expected hash, 2 new hash, 3 scope ('none' | 'all' | 'except'), 4 handle to keep,
--       5 session key prefix
-- Returns the ended handles, or nil when the user is gone or the hash changed meanwhile.
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[1] then
  return false
end
redis.call('HSET', KEYS[1], 'h', ARGV[2])
if ARGV[3] == 'none' then
  return {}
end
local keep = ''
if ARGV[3] == 'except' then
  keep = ARGV[4]
end
return end_all(KEYS[2], ARGV[5], keep)
