-- The take script: common.lua and take_fn.lua come first.
-- ARGV[1] lease ms, ARGV[2] token, ARGV[3] max attempts, ARGV[4] dead max,
-- ARGV[5] 1 when a BLPOP of the wake-up list comes just before, else 0
return take(tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1')
