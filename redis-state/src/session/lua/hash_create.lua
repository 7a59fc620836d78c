-- Creates a hash session; never overwrites one.
--
-- KEYS[1] the session; ARGV[1] the idle TTL (ms), ARGV[2..] field, value, ...
-- Returns 1 when created, 0 when the key already existed. Fields are written
-- in chunks of 500 pairs: Lua's unpack cannot spread more than about 8,000
-- values onto the stack, and a session may have more fields than that.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
