-- Record that entry ARGV[1] (expiring at ARGV[2] ms) carries tag KEYS[1],
-- drop members that expired before ARGV[3] (now), and keep the tag set
-- alive exactly as long as its longest-lived member.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
