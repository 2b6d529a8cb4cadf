-- Replace a passkey's record, compare-and-set: only if it is still the one read.
-- KEYS: 1 the user's passkeys hash; ARGV: 1 credential id, 2 the record read, 3 the new record
-- Returns 1 when replaced, 0 when it changed or is gone.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
