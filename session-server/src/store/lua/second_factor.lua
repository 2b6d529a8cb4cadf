-- Record a second factor proved in a live session (the second step of a login, or a step-up
-- later), consuming what the proof used, if the user is enabled and still at the credential
-- version the proof was checked against. Two uses of one TOTP step or one recovery code: the
-- first to run wins, the other is refused.
-- KEYS: 1 user hash, 2 sessions hash, 3 the user's pending TOTP enrolment, 4 the user's passkeys
-- ARGV: 1 credential version, 2 digest (the field), 3 the session's new assurance trailer
--       (domain/record.rs), 4 the whole new record (replaces a version 2 one),
--       5 kind: 'totp' | 'recovery' | 'enroll' | 'passkey' | 'passkey_add',
--       6 totp, enroll: the code's time step; recovery: the code's digest (16 bytes);
--         passkey, passkey_add: the credential id,
--       7 totp: the sealed secret the code was checked with; enroll: the pending enrolment as
--         read (session handle and sealed secret); passkey: its record as read; passkey_add: the
--         new passkey's record,
--       8 totp: the secret sealed with the current key, when it was not ('' otherwise);
--         enroll: the sealed secret; passkey: its record after the use (counter, last use),
--       9 enroll: the enrolment time (ms)
-- Returns {status, recovery codes left}; status 'ok' | 'gone' (no such live session) |
-- 'unavailable' (credentials changed, disabled) | 'replayed' (the step was used) | 'wrong' (no
-- such recovery code) | 'expired' (the enrolment is gone or was replaced) | 'exists' (the user
-- has that passkey already); a passkey whose record changed since it was read (another use of
-- it, a rename) is 'replayed', one removed 'unavailable'
local old = redis.call('HGET', KEYS[2], ARGV[2])
if not old or expiry(old) < now_ms() then
  return {'gone'}
end
if redis.call('HGET', KEYS[1], 'd') ~= '0' or credential_version(KEYS[1]) ~= ARGV[1] then
  return {'unavailable'}
end
local kind = ARGV[5]
if kind == 'totp' then
  if redis.call('HGET', KEYS[1], 't') ~= ARGV[7] then
    return {'unavailable'}
  end
  if tonumber(ARGV[6]) <= tonumber(redis.call('HGET', KEYS[1], 'ts') or '-1') then
    return {'replayed'}
  end
  redis.call('HSET', KEYS[1], 'ts', ARGV[6])
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[1], 't', ARGV[8])
  end
elseif kind == 'recovery' then
  local codes = redis.call('HGET', KEYS[1], 'r') or ''
  local found = nil
  for i = 1, #codes, 16 do
    if string.sub(codes, i, i + 15) == ARGV[6] then
      found = i
    end
  end
  if not found then
    return {'wrong'}
  end
  redis.call('HSET', KEYS[1], 'r', string.sub(codes, 1, found - 1) .. string.sub(codes, found + 16))
elseif kind == 'passkey' then
  local stored = redis.call('HGET', KEYS[4], ARGV[6])
  if not stored then
    return {'unavailable'}
  end
  if stored ~= ARGV[7] then
    return {'replayed'}
  end
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[8])
elseif kind == 'passkey_add' then
  if redis.call('HSETNX', KEYS[4], ARGV[6], ARGV[7]) == 0 then
    return {'exists'}
  end
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  set_enrolled(KEYS[2], true)
elseif kind == 'enroll' then
  if redis.call('GET', KEYS[3]) ~= ARGV[7] then
    return {'expired'}
  end
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[1], 't', ARGV[8], 'ts', ARGV[6], 'tc', ARGV[9])
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  -- The user's other sessions now belong to a user with a second factor.
  set_enrolled(KEYS[2], true)
else
  return redis.error_reply('unknown factor kind')
end
if string.byte(old, 1) == 3 then
  redis.call('HSET', KEYS[2], ARGV[2], with_trailer(old, ARGV[3]))
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', expiry(ARGV[4])), 'GT')
end
return {'ok', tostring(math.floor(#(redis.call('HGET', KEYS[1], 'r') or '') / 16))}
