-- Replace a password hash, compare-and-set.
-- KEYS: 1 user hash, 2 sessions hash, 3 barrier
-- ARGV: 1 mode, 2 expected, 3 new hash, 4 scope ('none' | 'all' | 'except'), 5 handle to keep
--       (16 raw bytes)
-- mode 'change': a new password. Applies only if the credential version is still ARGV[2];
--   advances the version and ends the sessions of the scope in the same step.
-- mode 'rehash': the same password hashed with new parameters. Applies only if the hash is still
--   ARGV[2]; the version and the sessions stay.
-- Returns the ended handles, or nil when the user is gone or the expectation failed.
barrier(KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if ARGV[1] == 'rehash' then
  if redis.call('HGET', KEYS[1], 'h') ~= ARGV[2] then
    return false
  end
  redis.call('HSET', KEYS[1], 'h', ARGV[3])
  return {}
end
if credential_version(KEYS[1]) ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[1], 'h', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'v', 1)
if ARGV[4] == 'none' then
  return {}
end
local keep = ''
if ARGV[4] == 'except' then
  keep = ARGV[5]
end
return end_all(KEYS[2], keep)
