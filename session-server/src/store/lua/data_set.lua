-- Write a live session's app data, compare-and-set on its version.
-- KEYS: 1 sessions hash
-- ARGV: 1 handle (16 raw bytes), 2 the version the write was computed from, 3 the new JSON
--       object text ('' for empty)
-- Returns {'ok', new version} | {'conflict', stored data or ''} | {'gone'}
local s = find_live(KEYS[1], ARGV[1])
if not s then
  return {'gone'}
end
local field = data_field(s[1])
local stored = redis.call('HGET', KEYS[1], field)
local version = '0'
if stored then
  version = string.match(stored, '^(%d+):') or '0'
end
if version ~= ARGV[2] then
  return {'conflict', stored or ''}
end
local bumped = string.format('%d', tonumber(version) + 1)
redis.call('HSET', KEYS[1], field, bumped .. ':' .. ARGV[3])
return {'ok', bumped}
