-- Helpers shared by the session scripts (prepended to each one).
-- Index members are "<handle>:<digest>", scored by the session's expiry in ms.

-- Drops index members whose session has expired.
local function prune(idx, now)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
end

-- Keeps the index alive exactly as long as its longest-lived session; deletes it when empty.
local function settle(idx)
  local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', idx)
  else
    redis.call('PEXPIREAT', idx, last[2])
  end
end

local function split(member)
  local sep = string.find(member, ':', 1, true)
  return string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
end

-- Ends the sessions named by `members` (except the handle `except`); returns their handles.
local function end_sessions(idx, prefix, members, except)
  local ended = {}
  for _, m in ipairs(members) do
    local handle, digest = split(m)
    if handle ~= except then
      redis.call('DEL', prefix .. digest)
      redis.call('ZREM', idx, m)
      table.insert(ended, handle)
    end
  end
  return ended
end

local function end_all(idx, prefix, except)
  local ended = end_sessions(idx, prefix, redis.call('ZRANGE', idx, 0, -1), except)
  settle(idx)
  return ended
end
