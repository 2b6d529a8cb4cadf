-- Change a user's second factors, if the user is still at the credential version the change was
-- decided on (any version for an admin's reset); advance the version and end the user's other
-- sessions in the same step.
-- KEYS: 1 user hash, 2 sessions hash, 3 barrier, 4 the user's pending TOTP enrolment, 5 the
--       user's passkeys
-- ARGV: 1 expected credential version ('' for any), 2 mode: 'remove_totp' | 'remove_passkey' |
--       'recovery' | 'reset', 3 the handle of the session to keep (16 raw bytes, '' for none),
--       4 recovery: the new codes' digests (16 bytes each), 5 remove_passkey: the credential id
-- Recovery codes stand in for a factor: they go with the last one, and then the kept session's
-- user has no factor enrolled.
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
elseif mode == 'remove_totp' then
  redis.call('HDEL', KEYS[1], 't', 'ts', 'tc')
  redis.call('DEL', KEYS[4])
elseif mode == 'remove_passkey' then
  redis.call('HDEL', KEYS[5], ARGV[5])
elseif mode == 'reset' then
  redis.call('HDEL', KEYS[1], 't', 'ts', 'tc', 'r')
  redis.call('DEL', KEYS[4], KEYS[5])
else
  return redis.error_reply('unknown factor change')
end
local enrolled = redis.call('HEXISTS', KEYS[1], 't') == 1 or redis.call('EXISTS', KEYS[5]) == 1
if not enrolled then
  redis.call('HDEL', KEYS[1], 'r')
end
redis.call('HINCRBY', KEYS[1], 'v', 1)
local ended = end_all(KEYS[2], ARGV[3])
set_enrolled(KEYS[2], enrolled)
return ended
