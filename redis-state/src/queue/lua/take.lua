-- Take the next job under a lease: first promote due delayed jobs and
-- reclaim jobs whose lease ran out (at most 100 of each per call), then pop
-- the ready job of highest priority (oldest first among equals).
-- KEYS[1] data, KEYS[2] prio, KEYS[3] ready, KEYS[4] delayed, KEYS[5] active,
-- KEYS[6] attempts, KEYS[7] token, KEYS[8] errors, KEYS[9] dead, KEYS[10] notify
-- ARGV[1] lease ms, ARGV[2] token, ARGV[3] max attempts, ARGV[4] dead max
-- Returns {id, payload, attempt} or {false, ms until something is due or -1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_attempts = tonumber(ARGV[3])
local function bury(id, err)
  redis.call('HSET', KEYS[8], id, err)
  redis.call('ZADD', KEYS[9], now, id)
  local over = redis.call('ZCARD', KEYS[9]) - tonumber(ARGV[4])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[9], math.min(over, 10))
    for i = 1, #popped, 2 do
      local old = popped[i]
      redis.call('HDEL', KEYS[1], old)
      redis.call('HDEL', KEYS[2], old)
      redis.call('HDEL', KEYS[6], old)
      redis.call('HDEL', KEYS[8], old)
    end
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[2], id) or 0, id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[7], id)
  local n = tonumber(redis.call('HGET', KEYS[6], id) or '0')
  if n >= max_attempts then
    bury(id, 'the lease ran out on each of ' .. n .. ' attempts (its workers died or stalled)')
  else
    redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[2], id) or 0, id)
  end
end
local top = redis.call('ZPOPMIN', KEYS[3], 1)
if #top == 0 then
  redis.call('DEL', KEYS[10])
  local next = -1
  local d = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if #d > 0 then next = tonumber(d[2]) - now end
  local a = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if #a > 0 and (next < 0 or tonumber(a[2]) - now < next) then next = tonumber(a[2]) - now end
  return {false, next}
end
local id = top[1]
local attempt = redis.call('HINCRBY', KEYS[6], id, 1)
redis.call('HSET', KEYS[7], id, ARGV[2])
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[1]), id)
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[10])
elseif redis.call('LLEN', KEYS[10]) == 0 then
  redis.call('LPUSH', KEYS[10], 1)
end
return {id, redis.call('HGET', KEYS[1], id) or false, attempt}
