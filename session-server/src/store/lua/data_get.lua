-- A live session's app data, by the session's handle.
-- KEYS: 1 sessions hash
-- ARGV: 1 handle (16 raw bytes)
-- Returns the stored data ('<version>:<json>'), '' for none, or nil when no live session has
-- that handle.
local s = find_live(KEYS[1], ARGV[1])
if not s then
  return false
end
return redis.call('HGET', KEYS[1], data_field(s[1])) or ''
