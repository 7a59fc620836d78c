-- Gives every tag an item holds its reverse entry (the item in the tag's
-- item set), for items whose tags another client wrote on one side only.
-- The tags' keys are built as in tags_set.lua. Refuses when the item holds
-- more than the limit.
--
-- KEYS[1] the item's tags
-- ARGV[1] the tag key prefix, ARGV[2] the tag key suffix, ARGV[3] the limit,
-- ARGV[4] the item
-- Returns {0, tags the item holds} or {-1, tags it holds}.
local item_key, prefix, suffix, item = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local n = redis.call('SCARD', item_key)
if n > tonumber(ARGV[3]) then return {-1, n} end
for _, t in ipairs(redis.call('SMEMBERS', item_key)) do
  -- a tag key of another type is left as it is
  redis.pcall('SADD', prefix .. esc(t) .. suffix, item)
end
return {0, n}
