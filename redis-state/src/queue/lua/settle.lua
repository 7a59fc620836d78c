-- The settle script: common.lua, stream/lua/effect.lua and settle_fn.lua
-- come first.
-- ARGV[1] id, ARGV[2] token, ARGV[3] verdict, ARGV[4] error, ARGV[5] delay
-- or lease ms, ARGV[6] dead max, ARGV[7..] effect commands.
return settle(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), 7)
