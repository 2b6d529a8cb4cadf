-- Change a user's second factors, if the user is still at the credential version the change was
-- decided on (any version for an admin's reset); advance the version and end the user's other
-- sessions in the same step.
-- KEYS: 1 user hash, 2 sessions hash, 3 barrier, 4 the user's pending TOTP enrolment
-- ARGV: 1 expected credential version ('' for any), 2 mode: 'remove_totp' | 'recovery' |
--       'reset', 3 the handle of the session to keep (16 raw bytes, '' for none),
--       4 recovery: the new codes' digests (16 bytes each)
-- 'remove_totp' and 'reset' remove the recovery codes too: they stand in for a factor and go
-- with the last one; the kept session's user then has no factor enrolled.
-- Returns the ended handles, or nil when the user is gone or the expectation failed.
barrier(KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if ARGV[1] ~= '' and credential_version(KEYS[1]) ~= ARGV[1] then
  return false
end
local mode = ARGV[2]
if mode == 'recovery' then
  redis.call('HSET', KEYS[1], 'r', ARGV[4])
elseif mode == 'remove_totp' or mode == 'reset' then
  redis.call('HDEL', KEYS[1], 't', 'ts', 'tc', 'r')
  redis.call('DEL', KEYS[4])
else
  return redis.error_reply('unknown factor change')
end
redis.call('HINCRBY', KEYS[1], 'v', 1)
local ended = end_all(KEYS[2], ARGV[3])
if mode ~= 'recovery' then
  set_enrolled(KEYS[2], false)
end
return ended
