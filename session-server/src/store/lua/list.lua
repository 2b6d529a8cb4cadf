-- A user's live session records, least recently active first; prunes as it reads.
-- KEYS: 1 index
-- ARGV: 1 session key prefix
prune(KEYS[1])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local _, digest = split(m)
  local record = redis.call('GET', ARGV[1] .. digest)
  if record then
    table.insert(out, record)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
settle(KEYS[1])
return out
