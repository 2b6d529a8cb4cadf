-- Create a session in its user's hash, atomically; enforce the per-user cap.
-- KEYS: 1 user hash, 2 sessions hash
-- ARGV: 1 credential version the login verified, 2 digest (the field), 3 record, 4 cap (0: none),
--       5 policy ('evict' | 'refuse')
-- Returns {'ok', evicted handles...} | {'unavailable'} | {'limit'} | {'collision'}
-- 'unavailable': the user is gone, disabled, or their credentials changed since the login
-- verified them (password change or set, disable, enable).
if redis.call('HGET', KEYS[1], 'd') ~= '0' or credential_version(KEYS[1]) ~= ARGV[1] then
  return {'unavailable'}
end
local live = prune(KEYS[2])
-- A 128-bit digest collision: report it rather than overwrite (or evict) anything.
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return {'collision'}
end
local ended = {'ok'}
local cap = tonumber(ARGV[4])
if cap > 0 and #live >= cap then
  if ARGV[5] == 'refuse' then
    return {'limit'}
  end
  -- Earliest expiry first: the least recently active sessions.
  table.sort(live, earlier)
  local victims, kept = {}, {}
  for i, s in ipairs(live) do
    if i <= #live - cap + 1 then
      table.insert(victims, s[1])
      table.insert(victims, data_field(s[1]))
      table.insert(ended, handle(s[2]))
    else
      table.insert(kept, s)
    end
  end
  hdel(KEYS[2], victims)
  live = kept
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
table.insert(live, {ARGV[2], ARGV[3], expiry(ARGV[3])})
settle(KEYS[2], live)
return ended
