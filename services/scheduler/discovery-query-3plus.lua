--[[
Purpose: read, in one atomic step, everything a discovery query needs from one chunk of the
index: its all-nodes and online bitmaps, its identities whose heartbeat is stale, its part of
the owner bitmaps of the replicas whose lease ended (their nodes are not online), and one reply
per leaf of the plan, always {bitmap, members} (either may be empty; the leaf is their union).
A KEY leaf answers the set's bitmap when it has one, else the set's members (identities, few).
A FACT leaf (a fact value) answers its bitmap, or its set's members (a set written before rare
fact values), and with either, as a third element, the offsets of its records in its bucket of
rare values (a value is in one form at a time; all three are read so that none is missed).
A RANGE leaf answers the offsets in range from the numeric fact's zset (at most one per node of
the chunk) as a bitmap: a wide range would otherwise send thousands of offsets per chunk, each
one reply element for the client to parse. Bitmaps are over the chunk's offsets; the caller
joins the chunks' replies.
KEYS[1]  the chunk's all-nodes bitmap (over offsets)
KEYS[2]  the chunk's online bitmap (over offsets)
KEYS[3]  the chunk's online nodes (zset identity -> last seen ms)
KEYS[4 ..]  per leaf, in order: a KEY leaf's bitmap and its set (two keys); a FACT leaf's
         bitmap, set and bucket of rare values (three keys); a RANGE leaf's numeric fact zset
         (offset -> number; one key)
KEYS[#KEYS - D + 1 ..]  the chunk's owner bitmaps of the D replicas whose lease ended
ARGV[1]  last-seen ms below which a node is stale
ARGV[2]  one letter per leaf, K, F or R
ARGV[3]  D
ARGV[4 ..]  per FACT leaf its digest (the bucket's records are a digest, then an offset in 2
         bytes), per RANGE leaf its min and max (ZRANGEBYSCORE syntax), in the leaves' order
Result:  {all bitmap, online bitmap, stale identities, {dead owner bitmap...},
         {bitmap, members} or, for a FACT leaf, {bitmap, members, offsets} per leaf...}
]]
local out = {
  redis.call('GET', KEYS[1]) or '',
  redis.call('GET', KEYS[2]) or '',
  redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1]),
}
local dead = {}
for i = #KEYS - tonumber(ARGV[3]) + 1, #KEYS do dead[#dead + 1] = redis.call('GET', KEYS[i]) or '' end
out[4] = dead
-- A global is a table lookup on every use (bit.bor two), a local a register: the loop below runs
-- once per node in range, so it reads local copies.
local bor, band, rshift, tonumber = bit.bor, bit.band, bit.rshift, tonumber
-- A bitmap (most significant bit first, as SETBIT) of a list of offsets.
local function bitmapOf(offsets)
  local bytes, top = {}, 0
  for i = 1, #offsets do
    local n = tonumber(offsets[i])
    local at = rshift(n, 3) + 1
    if at > top then
      for j = top + 1, at do bytes[j] = 0 end
      top = at
    end
    bytes[at] = bor(bytes[at], rshift(128, band(n, 7)))
  end
  -- unpack() pushes every value on Lua's bounded stack: long lists go in parts.
  local parts = {}
  for i = 1, top, 1000 do parts[#parts + 1] = string.char(unpack(bytes, i, math.min(i + 999, top))) end
  return table.concat(parts)
end
-- The offsets of the records of digest d in a bucket (a match counts only at a record's start).
local function recordsOf(s, d)
  local found, from, size = {}, 1, #d + 2
  while true do
    local i = string.find(s, d, from, true)
    if not i then return found end
    if (i - 1) % size == 0 then
      local hi, lo = string.byte(s, i + size - 2, i + size - 1)
      found[#found + 1] = hi * 256 + lo
      from = i + size
    else
      from = i + 1
    end
  end
end
local k, a = 4, 4
for i = 1, #ARGV[2] do
  local kind = string.sub(ARGV[2], i, i)
  if kind == 'K' or kind == 'F' then
    local b = redis.call('GET', KEYS[k])
    if b then out[#out + 1] = {b, {}} else out[#out + 1] = {'', redis.call('SMEMBERS', KEYS[k + 1])} end
    k = k + 2
    if kind == 'F' then
      out[#out][3] = recordsOf(redis.call('GET', KEYS[k]) or '', ARGV[a])
      k = k + 1
      a = a + 1
    end
  else
    out[#out + 1] = {bitmapOf(redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[a], ARGV[a + 1])), {}}
    a = a + 2
    k = k + 1
  end
end
return out
