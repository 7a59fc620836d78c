-- Reads one field of a hash session and slides its expiry.
--
-- KEYS[1] the session; ARGV[1] the idle TTL (ms), ARGV[2] the field
-- Returns {1, value or false} when the session exists, {0} otherwise.
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return {0} end
return {1, redis.call('HGET', KEYS[1], ARGV[2])}
