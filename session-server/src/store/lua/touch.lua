-- Renew a session only if it still exists (never revive a revoked one).
-- KEYS: 1 session key, 2 index
-- ARGV: 1 record, 2 expiry ms, 3 index member
-- Returns 1 when renewed, 0 when the session is gone.
if not redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2], 'XX') then
  return 0
end
-- The key lives, so its index entry must too: (re-)add it unconditionally. An entry pruned
-- meanwhile would otherwise hide the session from "end all" until it expires.
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
prune(KEYS[2])
settle(KEYS[2])
return 1
