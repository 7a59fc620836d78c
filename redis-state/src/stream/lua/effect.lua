-- Applies the commands of an `Effect` (stream/consumer.rs writes them):
-- ARGV from `i` on, per command its name, the number of arguments after
-- the key, then those arguments; its key is KEYS[k], KEYS[k + 1], ...
local function apply_effect(i, k)
  while i <= #ARGV do
    local nargs = tonumber(ARGV[i + 1])
    local call = {ARGV[i], KEYS[k]}
    for j = 1, nargs do call[#call + 1] = ARGV[i + 1 + j] end
    redis.call(unpack(call))
    i = i + 2 + nargs
    k = k + 1
  end
end
