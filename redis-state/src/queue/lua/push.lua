-- Add a job: its payload and priority, ready now or due later.
-- KEYS[1] seq, KEYS[2] jobs, KEYS[3] ready, KEYS[4] delayed, KEYS[5] notify,
-- KEYS[6] due (see common.lua)
-- ARGV[1] payload, ARGV[2] ready score (minus the priority), ARGV[3] delay ms
-- Returns the job id.
local id = string.format('%016d', redis.call('INCR', KEYS[1]))
redis.call('HSET', KEYS[2], id, ARGV[1], id .. ':p', ARGV[2])
local delay = tonumber(ARGV[3])
if delay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[4], now + delay, id)
  local d = redis.call('GET', KEYS[6])
  if d and tonumber(d) > now + delay then
    redis.call('SET', KEYS[6], now + delay)
  end
else
  redis.call('ZADD', KEYS[3], ARGV[2], id)
  if redis.call('LLEN', KEYS[5]) == 0 then
    redis.call('LPUSH', KEYS[5], 1)
  end
end
return id
