-- Presence: a sorted set of users scored by when they were last seen
-- (epoch seconds). Every call first drops at most 512 users last seen at
-- or before the cutoff (bounded work; reads filter by the cutoff, so what
-- is left for the next call is never reported), then:
--
-- ARGV[1] 'beat'  : ARGV[4] the user, ARGV[2] now; renews the TTL (ARGV[5] ms);
--                   returns the number online
-- ARGV[1] 'count' : returns the number online
-- ARGV[1] 'list'  : ARGV[4] offset, ARGV[5] count; returns the users online,
--                   most recently seen first, with their times
--
-- KEYS[1] the sorted set; ARGV[3] the cutoff (seconds)
local key, cutoff = KEYS[1], ARGV[3]
if ARGV[1] == 'beat' then
  redis.call('ZADD', key, ARGV[2], ARGV[4])
  redis.call('PEXPIRE', key, ARGV[5])
end
local stale = redis.call('ZCOUNT', key, '-inf', cutoff)
if stale > 0 then
  if stale > 512 then stale = 512 end
  redis.call('ZREMRANGEBYRANK', key, 0, stale - 1)
end
if ARGV[1] == 'list' then
  return redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. cutoff, 'WITHSCORES', 'LIMIT', ARGV[4], ARGV[5])
end
return redis.call('ZCOUNT', key, '(' .. cutoff, '+inf')
