-- Add a job: its payload and priority, ready now or due later.
-- KEYS[1] seq, KEYS[2] data, KEYS[3] prio, KEYS[4] ready, KEYS[5] delayed,
-- KEYS[6] notify
-- ARGV[1] payload, ARGV[2] ready score (minus the priority), ARGV[3] delay ms
-- Returns the job id.
local id = string.format('%016d', redis.call('INCR', KEYS[1]))
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('HSET', KEYS[3], id, ARGV[2])
local delay = tonumber(ARGV[3])
if delay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[5], now + delay, id)
else
  redis.call('ZADD', KEYS[4], ARGV[2], id)
  if redis.call('LLEN', KEYS[6]) == 0 then
    redis.call('LPUSH', KEYS[6], 1)
  end
end
return id
