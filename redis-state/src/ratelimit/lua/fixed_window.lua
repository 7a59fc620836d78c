-- Fixed window: at most `limit` per window; a window opens with the first
-- admitted request and lasts `window` ms (the key's TTL, kept by the server,
-- so clients with skewed clocks agree).
--
-- KEYS[1] the window's counter
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] cost
-- Returns {allowed (0/1), remaining, retry after (ms), reset after (ms)}.
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
local used = 0
if ttl == -1 then
  -- a counter without a TTL would never reset: open a new window
  redis.call('DEL', KEYS[1])
  ttl = -2
elseif ttl >= 0 then
  used = tonumber(redis.call('GET', KEYS[1]))
  if not used then
    return redis.error_reply('ERR rate limit counter at ' .. KEYS[1] .. ' is not a number')
  end
end
if used + cost > limit then
  return {0, math.max(limit - used, 0), ttl, ttl}
end
local n = redis.call('INCRBY', KEYS[1], cost)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {1, limit - n, 0, ttl}
