-- Helpers shared by the session scripts (prepended to each one).
-- A user's sessions are one hash: field = token digest, value = the encoded record
-- (domain/record.rs, version 2 and later): byte 1 the version, bytes 2-7 the session's expiry in
-- ms (48-bit big-endian), bytes 8-23 its handle (16 raw bytes), in version 3 bytes 24-27 the
-- time of the last authentication, then data only Rust reads. A session's app data, when it has
-- any, is the field `<digest>.d` (domain/session_data.rs): it lives and dies with its session.

-- Whether a field holds a session's app data rather than a session.
local function is_data(field)
  return string.sub(field, -2) == '.d'
end

-- The app data field of the session field `field`.
local function data_field(field)
  return field .. '.d'
end

-- Redis's own clock in ms. Pruning, renewal and the hash's expiry all go by it, so whatever the
-- replicas' clocks say, no two decisions about one session disagree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A record's expiry in ms (exact: doubles hold integers below 2^53). A value too short to be a
-- record reads as long expired, so the next prune removes it.
local function expiry(value)
  if #value < 23 then
    return -1
  end
  local a, b, c, d, e, f = string.byte(value, 2, 7)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end

-- The length of a version 3 record's assurance trailer (domain/record.rs): the flags byte, and
-- before it the 3-byte time of the second factor when the flags' bits 0x30 name one.
local function trailer_len(value)
  if bit.band(string.byte(value, -1), 0x30) ~= 0 then
    return 4
  end
  return 1
end

-- A version 3 record with the assurance trailer of `from` (a version 3 record too) in place of
-- its own: a renewal keeps the stored trailer, a factor proof replaces it.
local function with_trailer(value, from)
  return string.sub(value, 1, -trailer_len(value) - 1) .. string.sub(from, -trailer_len(from))
end

-- A record's handle: 16 raw bytes, as the scripts take and return handles.
local function handle(value)
  return string.sub(value, 8, 23)
end

-- Whether session entry a ({field, value, expiry}) goes before b: earlier expiry first, then the
-- handle's bytes (the order of the embedded store, and of handles as UUIDs).
local function earlier(a, b)
  if a[3] ~= b[3] then
    return a[3] < b[3]
  end
  for i = 8, 23 do
    local x, y = string.byte(a[2], i) or -1, string.byte(b[2], i) or -1
    if x ~= y then
      return x < y
    end
  end
  return false
end

-- Removes fields in chunks (a Lua call takes a bounded number of arguments).
local function hdel(sessions, fields)
  for i = 1, #fields, 512 do
    redis.call('HDEL', sessions, unpack(fields, i, math.min(i + 511, #fields)))
  end
end

-- Drops the sessions that have expired (a session with expiry d lives while now <= d), with
-- their app data, and returns the live ones as {field, value, expiry} entries.
local function prune(sessions)
  local now = now_ms()
  local all = redis.call('HGETALL', sessions)
  local live, dead, data, alive = {}, {}, {}, {}
  for i = 1, #all, 2 do
    if is_data(all[i]) then
      table.insert(data, all[i])
    else
      local e = expiry(all[i + 1])
      if e < now then
        table.insert(dead, all[i])
      else
        table.insert(live, {all[i], all[i + 1], e})
        alive[all[i]] = true
      end
    end
  end
  -- App data whose session is gone (expired now, or ended by any other path) goes too.
  for _, f in ipairs(data) do
    if not alive[string.sub(f, 1, -3)] then
      table.insert(dead, f)
    end
  end
  hdel(sessions, dead)
  return live
end

-- Keeps the hash alive exactly as long as its longest-lived session in `live`; deletes it when
-- there is none.
local function settle(sessions, live)
  local last = -1
  for _, s in ipairs(live) do
    if s[3] > last then
      last = s[3]
    end
  end
  if last < 0 then
    redis.call('DEL', sessions)
  else
    redis.call('PEXPIREAT', sessions, string.format('%.0f', last))
  end
end

-- Ends every session except the handle `except` ('' for none); returns the ended handles.
-- Expired sessions not yet pruned are ended (and named) too.
local function end_all(sessions, except)
  local all = redis.call('HGETALL', sessions)
  local ended, fields, kept, data, keep = {}, {}, {}, {}, nil
  for i = 1, #all, 2 do
    if is_data(all[i]) then
      table.insert(data, all[i])
    else
      local h = handle(all[i + 1])
      if h == except then
        table.insert(kept, {all[i], all[i + 1], expiry(all[i + 1])})
        keep = data_field(all[i])
      else
        table.insert(fields, all[i])
        if #h == 16 then
          table.insert(ended, h)
        end
      end
    end
  end
  if #kept == 0 then
    redis.call('DEL', sessions)
  else
    for _, f in ipairs(data) do
      if f ~= keep then
        table.insert(fields, f)
      end
    end
    hdel(sessions, fields)
    settle(sessions, kept)
  end
  return ended
end

-- The live session with handle `h` as a {field, value, expiry} entry, or nil. Reads only.
local function find_live(sessions, h)
  local now = now_ms()
  local all = redis.call('HGETALL', sessions)
  for i = 1, #all, 2 do
    if not is_data(all[i]) and handle(all[i + 1]) == h then
      local e = expiry(all[i + 1])
      if e >= now then
        return {all[i], all[i + 1], e}
      end
      return nil
    end
  end
  return nil
end

-- Moves the replication offset even when the script changes nothing else: the key (of the user's
-- slot, never stored) is written and deleted again. A `WAIT` pipelined after the script confirms
-- the connection's last write; without this, an end that found its session already gone (ended
-- by another connection, not yet on a replica) would have the `WAIT` confirm an older write and
-- be acknowledged on state that a failover can still undo (see store/replication.rs).
local function barrier(key)
  redis.call('SET', key, '')
  redis.call('DEL', key)
end

-- A user's credential version (absent in records written before versions existed: 0).
local function credential_version(user)
  return redis.call('HGET', user, 'v') or '0'
end

-- Sets (or clears) the "second factor enrolled" flag (domain/record.rs) on every version 3
-- session record in the hash, leaving every other byte as it is.
local function set_enrolled(sessions, enrolled)
  local all = redis.call('HGETALL', sessions)
  for i = 1, #all, 2 do
    local value = all[i + 1]
    if not is_data(all[i]) and string.byte(value, 1) == 3 then
      local flags = string.byte(value, -1)
      local new = bit.band(flags, 0xf7)
      if enrolled then
        new = bit.bor(flags, 8)
      end
      if new ~= flags then
        redis.call('HSET', sessions, all[i], string.sub(value, 1, -2) .. string.char(new))
      end
    end
  end
end
