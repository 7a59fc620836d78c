-- Takes the next job under a lease: first promotes due delayed jobs and
-- reclaims jobs whose lease ran out (at most 100 of each per call), then
-- pops the ready job of highest priority (oldest first among equals).
-- Returns {id, payload, attempt} or {false, ms until something is due or -1}.
local function take(lease, token, max_attempts, dead_max)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[2], id) or 0, id)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', KEYS[5], id)
    redis.call('HDEL', KEYS[7], id)
    local n = tonumber(redis.call('HGET', KEYS[6], id) or '0')
    if n >= max_attempts then
      bury(id, 'the lease ran out on each of ' .. n .. ' attempts (its workers died or stalled)', dead_max)
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
  redis.call('HSET', KEYS[7], id, token)
  redis.call('ZADD', KEYS[5], now + lease, id)
  if redis.call('ZCARD', KEYS[3]) == 0 then
    redis.call('DEL', KEYS[10])
  elseif redis.call('LLEN', KEYS[10]) == 0 then
    redis.call('LPUSH', KEYS[10], 1)
  end
  return {id, redis.call('HGET', KEYS[1], id) or false, attempt}
end
