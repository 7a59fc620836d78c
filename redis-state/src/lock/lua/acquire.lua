-- Takes a lock and draws its fencing token, atomically.
--
-- KEYS[1] the lock (holds the owner's random token, with a TTL)
-- KEYS[2] the lock's fence counter (never expires: tokens must keep growing)
-- ARGV[1] the caller's random token, ARGV[2] the TTL in milliseconds
-- Returns {1, fencing token} when taken, {0, remaining TTL of the holder in ms}
-- otherwise, and {-1, what the counter holds} without taking the lock when the
-- counter is not a non-negative integer below 10^18: a negative, fractional
-- or foreign value would hand out tokens that do not grow.
local last = redis.pcall('GET', KEYS[2])
if type(last) == 'table' then
  return {-1, 'a value of type ' .. redis.call('TYPE', KEYS[2])['ok']}
end
if last and not (last == '0' or (#last < 19 and string.match(last, '^[1-9]%d*$'))) then
  return {-1, last}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
