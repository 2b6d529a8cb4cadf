-- End one of a user's sessions by its public handle.
-- KEYS: 1 sessions hash, 2 barrier
-- ARGV: 1 handle (16 raw bytes)
-- Returns 1 when a live session was ended, 0 otherwise.
barrier(KEYS[2])
local live = prune(KEYS[1])
for i, s in ipairs(live) do
  if handle(s[2]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], s[1], data_field(s[1]))
    table.remove(live, i)
    settle(KEYS[1], live)
    return 1
  end
end
settle(KEYS[1], live)
return 0
