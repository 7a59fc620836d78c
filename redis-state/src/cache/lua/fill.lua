-- Store a loaded value if the caller still holds the fill lease, and wake
-- the callers waiting for it (the stream, and a message on its name for
-- `CacheWaker`s).
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] token, ARGV[2] envelope, ARGV[3] px, ARGV[4] done stream ms
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', KEYS[3], '1')
return 1
