-- Reads a hash session and slides its expiry.
--
-- KEYS[1] the session; ARGV[1] the idle TTL (ms)
-- Returns the HGETALL reply (empty when there is no session).
local all = redis.call('HGETALL', KEYS[1])
if #all > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return all
