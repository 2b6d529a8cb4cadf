-- Renew a session only if it still lives (never revive a revoked or expired one).
-- KEYS: 1 sessions hash
-- ARGV: 1 digest (the field), 2 renewed record (version 3)
-- The stored time of the last authentication and the stored assurance trailer (second factor,
-- enrolment) are kept: a re-authentication or a factor proof that landed after this renewal's
-- read must not be undone by it.
-- Returns 1 when renewed, 0 when the session is gone.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
if expiry(old) < now_ms() then
  redis.call('HDEL', KEYS[1], ARGV[1], data_field(ARGV[1]))
  return 0
end
local new = ARGV[2]
if string.byte(old, 1) == 3 and string.byte(new, 1) == 3 then
  new = with_trailer(string.sub(new, 1, 23) .. string.sub(old, 24, 27) .. string.sub(new, 28), old)
end
redis.call('HSET', KEYS[1], ARGV[1], new)
-- The hash lives as long as its longest-lived session: a renewal can only extend that. (GT
-- never shortens; the hash always has a TTL here, set when the session was created.)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expiry(new)), 'GT')
return 1
