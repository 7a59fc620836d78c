-- Give the fill lease back after a failed load and wake the waiters.
-- KEYS[1] lease, KEYS[2] done stream; ARGV[1] token, ARGV[2] message,
-- ARGV[3] done stream ms
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '1', '*', 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
