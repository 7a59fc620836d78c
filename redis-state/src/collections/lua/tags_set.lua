-- Replaces an item's tags (an empty list removes the item), on both sides,
-- atomically: the tags it held that are not in the new list lose the item
-- from their item sets. Those sets are found from the item's own set: their
-- keys are built here as <prefix><escaped tag><suffix>, where the prefix
-- holds the tag space's hash tag, so they are in the slot of KEYS (see
-- docs/design.md, "Tag sets"). Refuses (writing nothing) when the item holds
-- or would hold more than the limit, so the work stays bounded.
--
-- KEYS[1] the item's tags, KEYS[2..] the new tags' item sets (in ARGV order)
-- ARGV[1] the tag key prefix, ARGV[2] the tag key suffix, ARGV[3] the limit,
-- ARGV[4] the item, ARGV[5..] the new tags (distinct)
-- Returns {0, tags the item holds} or {-1, tags it holds or would hold}.
local item_key, prefix, suffix, item = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local limit = tonumber(ARGV[3])
local n = redis.call('SCARD', item_key)
if n > limit or #ARGV - 4 > limit then return {-1, math.max(n, #ARGV - 4)} end
local old = redis.call('SMEMBERS', item_key)
-- The new tags' sets first: a key of another type there fails the call
-- after undoing what it added, so nothing is half written.
local err = add_to_tags(item)
if err then return err end
local keep = {}
for i = 5, #ARGV do keep[ARGV[i]] = true end
for _, t in ipairs(old) do
  if not keep[t] then
    -- a key of another type cannot hold the item: skipped
    redis.pcall('SREM', prefix .. esc(t) .. suffix, item)
    redis.call('SREM', item_key, t)
  end
end
for i = 5, #ARGV do
  redis.call('SADD', item_key, ARGV[i])
end
return {0, #ARGV - 4}
