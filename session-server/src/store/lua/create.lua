-- Create a session and index it, atomically; enforce the per-user cap.
-- KEYS: 1 user hash, 2 index, 3 new session key
-- ARGV: 1 credential version the login verified, 2 record, 3 expiry ms, 4 index member,
--       5 cap (0: none), 6 policy ('evict' | 'refuse'), 7 session key prefix
-- Returns {'ok', evicted handles...} | {'unavailable'} | {'limit'} | {'collision'}
-- 'unavailable': the user is gone, disabled, or their credentials changed since the login
-- verified them (password change or set, disable, enable).
if redis.call('HGET', KEYS[1], 'd') ~= '0' or credential_version(KEYS[1]) ~= ARGV[1] then
  return {'unavailable'}
end
prune(KEYS[2])
local ended = {}
local cap = tonumber(ARGV[5])
if cap > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= cap then
    if ARGV[6] == 'refuse' then
      return {'limit'}
    end
    -- Lowest scores first: the sessions closest to expiry, i.e. the least recently active.
    ended = end_sessions(KEYS[2], ARGV[7], redis.call('ZRANGE', KEYS[2], 0, n - cap), '')
  end
end
if not redis.call('SET', KEYS[3], ARGV[2], 'PXAT', ARGV[3], 'NX') then
  return {'collision'}
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
settle(KEYS[2])
table.insert(ended, 1, 'ok')
return ended
