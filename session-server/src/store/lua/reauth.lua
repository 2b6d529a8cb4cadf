-- Record a new proof of the password in a live session ("sudo mode"), if the user is still at
-- the credential version the proof was verified against and is not disabled.
-- KEYS: 1 user hash, 2 sessions hash
-- ARGV: 1 credential version, 2 digest (the field), 3 the authentication field (4 bytes),
--       4 the whole re-authenticated record (version 3)
-- Only bytes 24-27 of a version 3 record change, so a renewal racing with this keeps both
-- effects; a version 2 record is replaced by ARGV[4].
-- Returns 'ok' | 'gone' (no such live session) | 'unavailable' (credentials changed, disabled)
if redis.call('HGET', KEYS[1], 'd') ~= '0' or credential_version(KEYS[1]) ~= ARGV[1] then
  return 'unavailable'
end
local old = redis.call('HGET', KEYS[2], ARGV[2])
if not old or expiry(old) < now_ms() then
  return 'gone'
end
if string.byte(old, 1) == 3 then
  redis.call('HSET', KEYS[2], ARGV[2], string.sub(old, 1, 23) .. ARGV[3] .. string.sub(old, 28))
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', expiry(ARGV[4])), 'GT')
end
return 'ok'
