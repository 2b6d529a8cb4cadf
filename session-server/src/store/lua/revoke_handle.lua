-- End one of a user's sessions by its public handle.
-- KEYS: 1 index
-- ARGV: 1 handle (32 hex), 2 session key prefix
-- Returns 1 when a live session was ended, 0 otherwise.
prune(KEYS[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local handle, digest = split(m)
  if handle == ARGV[1] then
    local n = redis.call('DEL', ARGV[2] .. digest)
    redis.call('ZREM', KEYS[1], m)
    settle(KEYS[1])
    return n
  end
end
return 0
