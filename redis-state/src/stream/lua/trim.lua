-- Trim a stream to its retention, but never past an entry a live consumer
-- group still needs (pending, or not delivered yet). A group is live while
-- one of its consumers was seen less than `dead_after` ms ago; a group
-- without a live consumer does not hold trimming back.
-- KEYS[1] stream
-- ARGV[1] 'maxlen' or 'minid', ARGV[2] the length, or the oldest id to keep,
-- ARGV[3] '~' or '=', ARGV[4] dead_after (ms)
-- Returns the number of entries removed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then return nil end
  return {tonumber(ms), tonumber(seq)}
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local function field(flat, name)
  for i = 1, #flat, 2 do
    if flat[i] == name then return flat[i + 1] end
  end
  return nil
end
local dead_after = tonumber(ARGV[4])
local floor = nil
local floor_text = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name = field(g, 'name')
  local live = false
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], name)) do
    local idle = field(c, 'idle')
    if idle and tonumber(idle) < dead_after then
      live = true
      break
    end
  end
  if live then
    local need = field(g, 'last-delivered-id')
    if tonumber(field(g, 'pending')) > 0 then
      local summary = redis.call('XPENDING', KEYS[1], name)
      need = summary[2]
    end
    local parsed = need and parse(need)
    if parsed and (floor == nil or less(parsed, floor)) then
      floor = parsed
      floor_text = need
    end
  end
end
if ARGV[1] == 'minid' then
  local keep = parse(ARGV[2])
  if floor and keep and less(floor, keep) then
    return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3], floor_text)
  end
  return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3], ARGV[2])
end
local n = tonumber(ARGV[2])
if floor == nil then
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[3], n)
end
-- Keeping the newest n entries is safe when fewer than n entries are at
-- or after the floor; otherwise trim below the floor only.
local after = redis.call('XRANGE', KEYS[1], floor_text, '+', 'COUNT', n)
if #after < n then
  return redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[3], n)
end
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3], floor_text)
