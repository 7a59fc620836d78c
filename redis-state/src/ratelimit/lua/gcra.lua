-- GCRA (generic cell rate algorithm), the token bucket kept as one number:
-- the theoretical arrival time (TAT) of the next request, in microseconds of
-- the server's clock (TIME), so clients with skewed clocks agree. A full
-- bucket admits `burst` at once; it refills one unit every `interval`.
--
-- KEYS[1] the TAT
-- ARGV[1] burst, ARGV[2] interval (µs, the period divided by the rate), ARGV[3] cost
-- Returns {allowed (0/1), remaining, retry after (ms), reset after (ms)}.
local burst, interval, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = tonumber(stored)
  if not tat then
    return redis.error_reply('ERR rate limit state at ' .. KEYS[1] .. ' is not a number')
  end
  if tat < now then tat = now end
end
local tolerance = interval * burst
local function ms(us) return math.ceil(us / 1000) end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if now < allow_at then
  local remaining = math.floor((now - (tat - tolerance)) / interval)
  return {0, math.max(remaining, 0), ms(allow_at - now), ms(tat - now)}
end
-- %.0f keeps all digits (tostring would round to 14)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(ms(new_tat - now), 1))
local remaining = math.floor((now - (new_tat - tolerance)) / interval)
return {1, math.max(remaining, 0), 0, ms(new_tat - now)}
