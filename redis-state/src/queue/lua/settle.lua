-- Settle a job taken under a lease, only while the lease is held: the token
-- matches and the lease has not run out (fenced completion).
-- KEYS[1] data, KEYS[2] prio, KEYS[3] delayed, KEYS[4] active, KEYS[5] attempts,
-- KEYS[6] token, KEYS[7] errors, KEYS[8] dead, KEYS[9..] effect keys
-- ARGV[1] id, ARGV[2] token, ARGV[3] verdict: 'done', 'retry', 'dead' or
-- 'extend', ARGV[4] error, ARGV[5] delay or lease ms, ARGV[6] dead max,
-- ARGV[7..] effect commands: name, number of arguments after the key, arguments
-- Returns 0 when the lease is not held, 1 done / extended, 2 retried, 3 dead.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
if redis.call('HGET', KEYS[6], id) ~= ARGV[2] then
  return 0
end
local until_ms = redis.call('ZSCORE', KEYS[4], id)
if not until_ms or tonumber(until_ms) <= now then
  return 0
end
local verdict = ARGV[3]
if verdict == 'extend' then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), id)
  return 1
end
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[6], id)
if verdict == 'done' then
  local i, k = 7, 9
  while i <= #ARGV do
    local nargs = tonumber(ARGV[i + 1])
    local call = {ARGV[i], KEYS[k]}
    for j = 1, nargs do call[#call + 1] = ARGV[i + 1 + j] end
    redis.call(unpack(call))
    i = i + 2 + nargs
    k = k + 1
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[7], id)
  return 1
end
redis.call('HSET', KEYS[7], id, ARGV[4])
if verdict == 'retry' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), id)
  return 2
end
redis.call('ZADD', KEYS[8], now, id)
local over = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[6])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[8], math.min(over, 10))
  for i = 1, #popped, 2 do
    local old = popped[i]
    redis.call('HDEL', KEYS[1], old)
    redis.call('HDEL', KEYS[2], old)
    redis.call('HDEL', KEYS[5], old)
    redis.call('HDEL', KEYS[7], old)
  end
end
return 3
