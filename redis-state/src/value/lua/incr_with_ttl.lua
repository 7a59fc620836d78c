-- Increments a counter and gives it a TTL when it has none, atomically: a
-- window opened by the first increment ends on time, and a counter left
-- without a TTL gets one.
--
-- KEYS[1] the counter
-- ARGV[1] 'INCRBY' or 'INCRBYFLOAT', ARGV[2] the increment, ARGV[3] the TTL (ms)
-- Returns the new value as the increment command returned it.
local n = redis.call(ARGV[1], KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return n
