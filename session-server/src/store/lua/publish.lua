-- Append an event to the feed, keep the feed bounded, and let it expire a week after its last event.
-- KEYS: 1 stream
-- ARGV: 1 max length, 2 type, 3 user, 4 handles (comma-separated), 5 all ('1'|'0'), 6 kept handle or '',
--       7 time ms, 8 the acting admin key's id or '', 9 the acting admin's client address or ''
-- The admin's fields are written only when there is an admin: most events have none.
local fields = {'t', ARGV[2], 'u', ARGV[3], 'h', ARGV[4], 'a', ARGV[5], 'k', ARGV[6], 'ms', ARGV[7]}
if ARGV[8] ~= '' then
  table.insert(fields, 'bk')
  table.insert(fields, ARGV[8])
  table.insert(fields, 'bi')
  table.insert(fields, ARGV[9])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('PEXPIRE', KEYS[1], 604800000)
return id
