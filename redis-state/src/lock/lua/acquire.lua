-- Takes a lock and draws its fencing token, atomically.
--
-- KEYS[1] the lock (holds the owner's random token, with a TTL)
-- KEYS[2] the lock's fence counter (never expires: tokens must keep growing)
-- ARGV[1] the caller's random token, ARGV[2] the TTL in milliseconds
-- Returns {1, fencing token} when taken, {0, remaining TTL of the holder in ms}
-- otherwise.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
