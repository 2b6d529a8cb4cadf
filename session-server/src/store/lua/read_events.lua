-- Read the feed after a position, with what is needed to tell whether the position is gone.
-- KEYS: 1 stream
-- ARGV: 1 position ('$' for the current end), 2 count
-- Returns {'missing'} when there is no feed, else {'ok', last-generated-id, first retained id ('' when
-- empty), then for each entry: id, type, user, handles, all, kept, time, admin key id, admin address}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local first = ''
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #oldest > 0 then first = oldest[1][1] end
local out = {'ok', last, first}
if ARGV[1] == '$' then
  return out
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])) do
  local f = {}
  local fields = entry[2]
  for i = 1, #fields, 2 do
    f[fields[i]] = fields[i + 1]
  end
  for _, v in ipairs({entry[1], f['t'] or '', f['u'] or '', f['h'] or '', f['a'] or '0', f['k'] or '', f['ms'] or '0',
      f['bk'] or '', f['bi'] or ''}) do
    table.insert(out, v)
  end
end
return out
