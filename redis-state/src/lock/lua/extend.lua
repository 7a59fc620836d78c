-- Resets the lock's TTL only if it still holds the caller's token.
--
-- KEYS[1] the lock; ARGV[1] the caller's token, ARGV[2] the new TTL in ms
-- Returns 1 when extended, 0 when the lock is not (or no longer) the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
