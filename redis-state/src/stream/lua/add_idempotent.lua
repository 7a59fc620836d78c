-- An idempotent add on a server without `XADD … IDMP` (before Redis 8.6),
-- with its contract: a repeat of (producer, iid) within the window returns
-- the first entry's id and adds nothing. The ids are remembered per
-- producer, in the stream's slot, for `window` ms and at most `most` of
-- them (the oldest forgotten first), as `XADD … IDMP` does with its
-- IDMP-DURATION and IDMP-MAXSIZE.
-- KEYS[1] stream, KEYS[2] the producer's ids (hash: iid -> entry id),
-- KEYS[3] when each was added (sorted set: iid by server ms)
-- ARGV[1] iid, ARGV[2] window (ms), ARGV[3] most, ARGV[4] cap (0: none),
-- ARGV[5] 'MAXLEN', 'MINID' or '' (no trimming), ARGV[6] '~' or '=',
-- ARGV[7] the length or the oldest id kept, ARGV[8..] field/value pairs
-- Returns the entry id, or the error 'FULL <len>' when the stream holds
-- `cap` entries already.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - window, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[3], unpack(old))
end
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then
  return seen
end
local cap = tonumber(ARGV[4])
if cap > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len >= cap then
    return redis.error_reply('FULL ' .. len)
  end
end
local args = {'XADD', KEYS[1]}
if ARGV[5] ~= '' then
  args[#args + 1] = ARGV[5]
  args[#args + 1] = ARGV[6]
  args[#args + 1] = ARGV[7]
end
args[#args + 1] = '*'
for i = 8, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.call(unpack(args))
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('ZADD', KEYS[3], now, ARGV[1])
local n = redis.call('ZCARD', KEYS[3])
local most = tonumber(ARGV[3])
if n > most then
  local gone = redis.call('ZPOPMIN', KEYS[3], n - most)
  for i = 1, #gone, 2 do
    redis.call('HDEL', KEYS[2], gone[i])
  end
end
redis.call('PEXPIRE', KEYS[2], window)
redis.call('PEXPIRE', KEYS[3], window)
return id
