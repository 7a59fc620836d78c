-- Sliding window log: at most `limit` admitted in any `window`, exactly.
-- Every admitted request is a member of a sorted set scored by the server's
-- clock (TIME, in microseconds), so clients with skewed clocks agree.
--
-- KEYS[1] the log (ZSET)
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] cost
-- Returns {allowed (0/1), remaining, retry after (ms), reset after (ms)}.
local limit, window_ms, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window = window_ms * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- the window is (now - window, now]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local function ms(us) return math.max(math.ceil(us / 1000), 1) end
if used + cost > limit then
  -- it fits once the oldest (used + cost - limit) entries leave the window
  local k = used + cost - limit
  local oldest = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return {0, math.max(limit - used, 0), ms(tonumber(oldest[2]) + window - now),
          ms(tonumber(newest[2]) + window - now)}
end
-- Members are unique: two calls at the same microsecond see different
-- counts. (%.0f: tostring would round the 16 digits to 14.)
local stamp = string.format('%.0f', now)
for i = 1, cost do
  redis.call('ZADD', KEYS[1], now, stamp .. '-' .. (used + i))
end
redis.call('PEXPIRE', KEYS[1], window_ms)
return {1, limit - used - cost, 0, window_ms}
