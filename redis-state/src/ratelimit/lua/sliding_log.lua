-- Sliding window log: at most `limit` admitted in any `window` ms, exactly.
-- Every admitted request is a member of a sorted set scored by the server's
-- clock (TIME), so clients with skewed clocks agree.
--
-- KEYS[1] the log (ZSET)
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] cost
-- Returns {allowed (0/1), remaining, retry after (ms), reset after (ms)}.
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
-- milliseconds stay exact through Lua's number-to-string conversion
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + cost > limit then
  -- it fits once the oldest (used + cost - limit) entries leave the window
  local k = used + cost - limit
  local oldest = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local retry = tonumber(oldest[2]) + window - now
  local reset = tonumber(newest[2]) + window - now
  return {0, math.max(limit - used, 0), math.max(retry, 1), math.max(reset, 1)}
end
-- members are unique: two calls in the same millisecond see different counts
for i = 1, cost do
  redis.call('ZADD', KEYS[1], now, now .. '-' .. (used + i))
end
redis.call('PEXPIRE', KEYS[1], window)
return {1, limit - used - cost, 0, window}
