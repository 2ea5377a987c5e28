-- drop-watermarks.lua - removes one input topic's watermarks from one
-- customer hash, for an input topic that was deleted and recreated on
-- purpose to start over (docs/fault-tolerance.md, "Recreated input
-- topics"): its new offsets begin at 0 again, and the old watermarks
-- would skip them as re-deliveries.
--
--   KEYS[1]  a customer hash, <prefix>c:{<customer id>}
--   ARGV[1]  the topic's name
--
-- Removes the entries of the binary field w (layout 4) whose topic id is
-- the FNV-1a 32 of the name, and the fields w:<name>:<partition> of
-- layouts 1 to 3 (docs/contracts.md section 2, "Encoding of w"). When it
-- removed something it bumps v, so that a running custpulse re-reads the
-- customer rather than writing back the watermarks of its state cache.
-- Returns the number of watermarks removed; a malformed w is an error and
-- changes nothing. Per key, like this (stop consuming the topic first and
-- delete its <prefix>ep:<name>:* keys):
--
--   redis-cli --scan --pattern 'cp:c:*' | while IFS= read -r k; do
--     redis-cli --eval deploy/drop-watermarks.lua "$k" , customer.orders
--   done
--
-- (for millions of customers: SCRIPT LOAD it once and pipe EVALSHA lines
-- through redis-cli --pipe; in a Redis Cluster, on every primary).

local key, name = KEYS[1], ARGV[1]

-- FNV-1a 32 in doubles: 16777619 = 2^24 + 403, and h * 2^24 mod 2^32
-- only needs h's low byte, so no product exceeds 2^53.
local function fnv1a32(s)
  local h = 2166136261
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i))
    if h < 0 then h = h + 4294967296 end
    h = (h * 403 + (h % 256) * 16777216) % 4294967296
  end
  return h
end

-- The index after the LEB128 number at i, or nil if it is truncated or
-- longer than 10 bytes (only its length matters here: entries are kept or
-- dropped whole).
local function skip_uvarint(s, i)
  for k = 0, 9 do
    local c = s:byte(i + k)
    if not c then return nil end
    if c < 128 then return i + k + 1 end
  end
  return nil
end

local tid = fnv1a32(name)
local removed = 0
local w = redis.call('HGET', key, 'w')
if w then
  local keep, i = {}, 1
  while i <= #w do
    local start = i
    if i + 3 > #w then
      return redis.error_reply('w of ' .. key .. ' is truncated')
    end
    local id = w:byte(i) + w:byte(i + 1) * 256 + w:byte(i + 2) * 65536 +
               w:byte(i + 3) * 16777216
    i = skip_uvarint(w, i + 4)
    i = i and skip_uvarint(w, i)
    if not i then
      return redis.error_reply('w of ' .. key .. ' is malformed')
    end
    if id == tid then
      removed = removed + 1
    else
      keep[#keep + 1] = w:sub(start, i - 1)
    end
  end
  if removed > 0 and #keep > 0 then
    redis.call('HSET', key, 'w', table.concat(keep))
  elseif removed > 0 then
    redis.call('HDEL', key, 'w')
  end
end

local prefix = 'w:' .. name .. ':'
for _, f in ipairs(redis.call('HKEYS', key)) do
  if f:sub(1, #prefix) == prefix and f:sub(#prefix + 1):match('^%d+$') then
    redis.call('HDEL', key, f)
    removed = removed + 1
  end
end
if removed > 0 then
  redis.call('HINCRBY', key, 'v', 1)
end
return removed
