-- Renew a session only if it still lives (never revive a revoked or expired one).
-- KEYS: 1 sessions hash
-- ARGV: 1 digest (the field), 2 renewed record
-- Returns 1 when renewed, 0 when the session is gone.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
if expiry(old) < now_ms() then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
-- The hash lives as long as its longest-lived session: a renewal can only extend that. (GT
-- never shortens; the hash always has a TTL here, set when the session was created.)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expiry(ARGV[2])), 'GT')
return 1
