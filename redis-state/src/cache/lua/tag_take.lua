-- Remove tag set KEYS[1] and return its live members (entry keys).
-- ARGV[1] now (ms)
local m = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
redis.call('DEL', KEYS[1])
return m
