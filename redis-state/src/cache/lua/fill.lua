-- Store a loaded value if the caller still holds the fill lease, and wake
-- the callers waiting for it (the stream, and a message on its name for
-- `CacheWaker`s) when there are any: a caller that found the lease busy
-- marked it (`<token>~w`, see `acquire`); an unmarked lease had no waiter,
-- and its fill writes no stream and publishes nothing.
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] token, ARGV[2] envelope, ARGV[3] px, ARGV[4] done stream ms
local holder = redis.call('GET', KEYS[2])
local waited = holder == ARGV[1] .. '~w'
if holder ~= ARGV[1] and not waited then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
if waited then
  redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'v', ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  redis.call('PUBLISH', KEYS[3], '1')
end
return 1
