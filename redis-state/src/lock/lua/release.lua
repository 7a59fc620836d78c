-- Deletes the lock only if it still holds the caller's token.
--
-- KEYS[1] the lock; ARGV[1] the caller's token
-- Returns 1 when released, 0 when the lock is not (or no longer) the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
