-- Append an event to the feed, keep the feed bounded, and let it expire a week after its last event.
-- KEYS: 1 stream
-- ARGV: 1 max length, 2 type, 3 user, 4 handles (comma-separated), 5 all ('1'|'0'), 6 kept handle or '',
--       7 time ms
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  't', ARGV[2], 'u', ARGV[3], 'h', ARGV[4], 'a', ARGV[5], 'k', ARGV[6], 'ms', ARGV[7])
redis.call('PEXPIRE', KEYS[1], 604800000)
return id
