-- Read an entry, or take its fill lease when it is missing, or learn who
-- has the lease: the first round trip of a cache-aside read (and the retry
-- of a miss).
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] token, ARGV[2] lease ms, ARGV[3] '1' to ignore an existing value
-- Returns the entry itself (a hit: a bulk string, no table to build), or
-- 1 (lease taken), 2 (another caller loads), 3 (recently invalidated: load
-- without caching), 4 (the entry key holds another Redis type).
if ARGV[3] ~= '1' then
  local v = redis.pcall('GET', KEYS[1])
  if v then
    if type(v) == 'table' then return 4 end
    return v
  end
end
local holder = redis.call('GET', KEYS[2])
if holder == 'inv' then return 3 end
if holder then
  -- Mark the lease as waited for: only then does its fill (or abandon)
  -- write the wake-up stream and publish.
  if string.sub(holder, -2) ~= '~w' then
    redis.call('SET', KEYS[2], holder .. '~w', 'KEEPTTL')
  end
  return 2
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return 1
