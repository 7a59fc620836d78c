-- Creates a hash session; never overwrites one.
--
-- KEYS[1] the session; ARGV[1] the idle TTL (ms), ARGV[2..] field, value, ...
-- Returns 1 when created, 0 when the key already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
