-- Give up a user's claim of a passkey's credential id, and only that user's.
-- KEYS: 1 the claim; ARGV: 1 the user id (32 hex digits)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return redis.status_reply('OK')
