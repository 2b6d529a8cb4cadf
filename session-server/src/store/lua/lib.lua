-- Helpers shared by the session scripts (prepended to each one).
-- Index members are "<handle>:<digest>", scored by the session's expiry in ms.

-- Redis's own clock in ms. Keys expire by this clock, so pruning by it can never drop the index
-- entry of a key that still lives, whatever the calling replica's clock says.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drops index members whose session has expired: a key with expiry d lives while now <= d.
local function prune(idx)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. string.format('%.0f', now_ms()))
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

-- A user's credential version (absent in records written before versions existed: 0).
local function credential_version(user)
  return redis.call('HGET', user, 'v') or '0'
end
