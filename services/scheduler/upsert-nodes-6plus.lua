--[[
Purpose: write nodes of one index chunk from their Hellos and replace their inverted-index
entries in one step, so that a reader never sees a node under both its old and its new facts.
The entries a node is in are kept in its hash (field `index`, JSON) so that the next write can
remove exactly those; entries in both the old and the new list are left alone, and a Hello
whose entries are those already stored (a reconnect with unchanged facts) touches none. Each
node comes with its offset in the chunk (its dense id, assigned by the caller, minus the
chunk's first id), recorded in KEYS[3]. A membership is a set of names until it reaches ARGV[1]
members, then it is converted to a bitmap (the set is deleted, KEYS[6] records it) and
maintained with BITFIELD; the flag, not the size, says which form a membership has, so writers
with different thresholds never disagree. The nodes of one call are distinct: their changes to
a membership commute and are applied together (one SADD, SREM or BITFIELD per membership). A
stored index that is not valid JSON counts as no entries (the node is then indexed anew rather
than failing the batch of nodes written with it).
A fact value (a membership with a digest) held by fewer than ARGV[5] nodes of the chunk has no
set: it is a record (its digest, then the node's offset in 2 bytes) in its bucket of rare values,
a string of such records. A value whose records reach ARGV[5] moves to its bitmap (flagged in
KEYS[6]); a value's bitmap that falls below half of ARGV[5] moves back to records, and an empty
one is deleted. Where a fact value is found as a set (written before rare values), the set is
kept up as before.
Every key touched is in KEYS: the caller declares each membership set (with its bitmap) and
numeric-fact zset of the new entries and of the stored ones, which it read before the call. A
stored entry naming a key not declared (the node was written by another scheduler since)
answers {'STALE'} before anything is written, for the caller to read again and retry.
With a replica id, the nodes become that replica's (`owner` in the node hash, its bit in the
replica's owner bitmap), and leave the owner bitmap of the replica they had: the move is part of
the same write. A node whose previous owner is not among the replicas passed makes the script
answer {'UNKNOWN_OWNER', id} before writing anything, for the caller to pass that one too.
KEYS[1]  the chunk's known nodes (zset identity -> last seen ms)
KEYS[2]  the chunk's online nodes (zset identity -> last seen ms)
KEYS[3]  the chunk's offsets (hash identity -> offset)
KEYS[4]  the chunk's all-nodes bitmap (over offsets)
KEYS[5]  the chunk's online bitmap (over offsets)
KEYS[6]  the chunk's membership sets held as bitmaps (hash set key -> 1)
KEYS[6 + i]  the hash of the i-th node (i = 1 .. B)
KEYS[7 + B + 3j], KEYS[8 + B + 3j]  the j-th membership set and its bitmap (j = 0 .. M-1)
KEYS[9 + B + 3j]  for a fact value, the bucket of rare values its digest falls in (string of
         records); for a class or an agent, the set again (not used)
KEYS[7 + B + 3M + z]  the z-th numeric fact zset (offset -> number; z = 0 .. Z-1)
KEYS[7 + B + 3M + Z]  with a replica id: its owner bitmap
KEYS[7 + B + 3M + Z + r]  with a replica id: the owner bitmap of the r-th other replica (r = 1 .. K)
ARGV[1]  the members from which a membership set becomes a bitmap
ARGV[2]  B, the number of nodes
ARGV[3]  M, the number of membership sets declared
ARGV[4]  Z, the number of numeric fact zsets declared
ARGV[5]  the nodes of a chunk from which a fact value has a bitmap rather than records
ARGV[5 + j]  the digest of the j-th membership (j = 1 .. M) when it is a fact value, else ''
         (every digest of the same length)
ARGV[6 + M ..]  B records of: identity, offset, now (ms), session id, facts JSON, classes JSON,
         agents JSON, version, the node's entries as stored, JSON
         `{"sets": [key...], "zsets": [[key, score-as-text]...]}`, then the same entries as
         arguments: S and N, then S membership set keys, N times (numeric fact zset key, score);
         after the records: the writing replica's id ('' for none), K, and the ids of K other
         replicas
Result:  1; {'STALE'} when a stored entry's key was not declared; {'UNKNOWN_OWNER', id} when a
         node's owner is not among the replicas passed (nothing written in either case)
]]
local minMembers = tonumber(ARGV[1])
local B, M, Z = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rareBelow = tonumber(ARGV[5])
local demoteBelow = math.ceil(rareBelow / 2)
-- unpack() pushes every value on Lua's bounded stack: long argument lists go in chunks.
local CHUNK = 1000
local function each(list, step, fn)
  for i = 1, #list, step do fn(unpack(list, i, math.min(i + step - 1, #list))) end
end
-- One BITFIELD per bitmap; offsets are kept as text, as Redis takes them.
local function setBits(key, ids, value)
  local args, c = {}, 0
  for i = 1, #ids do
    args[c + 1] = 'SET'; args[c + 2] = 'u1'; args[c + 3] = ids[i]; args[c + 4] = value
    c = c + 4
  end
  each(args, CHUNK, function(...) redis.call('BITFIELD', key, ...) end)
end

-- The declared keys: each membership set's bitmap (and a fact value's bucket and digest), and
-- the numeric fact zsets.
local bitsOf, bucketOf, digestOf, numeric = {}, {}, {}, {}
local RECORD = 0
for j = 0, M - 1 do
  local k = KEYS[7 + B + 3 * j]
  bitsOf[k] = KEYS[8 + B + 3 * j]
  if ARGV[6 + j] ~= '' then
    digestOf[k] = ARGV[6 + j]
    bucketOf[k] = KEYS[9 + B + 3 * j]
    RECORD = #ARGV[6 + j] + 2
  end
end
local zAt = 7 + B + 3 * M
for z = 0, Z - 1 do numeric[KEYS[zAt + z]] = true end
local ownerAt = zAt + Z

local nodes = {}
local p = 6 + M
for i = 1, B do
  local S, N = tonumber(ARGV[p + 9]), tonumber(ARGV[p + 10])
  nodes[i] = {at = p, S = S, N = N, name = ARGV[p], nid = ARGV[p + 1]}
  p = p + 11 + S + 2 * N
end

-- Owners: each node's previous one must be among the replicas passed, checked before any write.
local me, ownerKey = ARGV[p], {}
if me ~= '' then
  ownerKey[me] = KEYS[ownerAt]
  for r = 1, tonumber(ARGV[p + 1]) do ownerKey[ARGV[p + 1 + r]] = KEYS[ownerAt + r] end
  for i, n in ipairs(nodes) do
    local old = redis.call('HGET', KEYS[6 + i], 'owner')
    if old and not ownerKey[old] then return {'UNKNOWN_OWNER', old} end
    n.owner = old
  end
end

-- Stored entries: decoded and checked against the declared keys before any write. A node
-- indexed for the first time has none and skips every comparison below (most of a
-- registration storm's nodes); one whose entries are unchanged is left alone.
for i, n in ipairs(nodes) do
  local old = redis.call('HGET', KEYS[6 + i], 'index')
  n.same = old == ARGV[n.at + 8]
  if old and not n.same then
    local ok, decoded = pcall(cjson.decode, old)
    local o = ok and type(decoded) == 'table' and decoded or {}
    -- Only what this script writes is read back: other values are ignored, as the caller does.
    local sets, zsets = {}, {}
    for _, k in ipairs(type(o.sets) == 'table' and o.sets or {}) do
      if type(k) == 'string' then sets[#sets + 1] = k end
    end
    for _, e in ipairs(type(o.zsets) == 'table' and o.zsets or {}) do
      if type(e) == 'table' and type(e[1]) == 'string' then zsets[#zsets + 1] = e end
    end
    for _, k in ipairs(sets) do
      if not bitsOf[k] then return {'STALE'} end
    end
    for _, e in ipairs(zsets) do
      if not numeric[e[1]] then return {'STALE'} end
    end
    n.old = {sets = sets, zsets = zsets}
  end
end

-- Offsets, so that the chunk's other scripts find a node's bit from its name.
local offsets = {}
for _, n in ipairs(nodes) do
  offsets[#offsets + 1] = n.name
  offsets[#offsets + 1] = n.nid
end
redis.call('HSET', KEYS[3], unpack(offsets))

-- Each node's changes, gathered per membership and per numeric fact.
local setOps, setOrder, zOps, zOrder = {}, {}, {}, {}
-- The changes to key k in ops (lists named by fields), created on first use; order keeps the keys.
local function opOf(ops, order, fields, k)
  local op = ops[k]
  if not op then
    op = {}
    for _, f in ipairs(fields) do op[f] = {} end
    ops[k] = op
    order[#order + 1] = k
  end
  return op
end
local SET_FIELDS, Z_FIELDS = {'add', 'addIds', 'rem', 'remIds'}, {'add', 'rem'}
local function setOp(k)
  if not bitsOf[k] then error('membership set not declared: ' .. k) end
  return opOf(setOps, setOrder, SET_FIELDS, k)
end
local function zOp(k)
  if not numeric[k] then error('numeric fact zset not declared: ' .. k) end
  return opOf(zOps, zOrder, Z_FIELDS, k)
end
for _, n in ipairs(nodes) do
  local at, S, N, name, nid = n.at, n.S, n.N, n.name, n.nid
  local z0 = at + 11 + S
  if not n.same then
    local o = n.old
    local was, now = {}, o and {}
    for _, k in ipairs(o and o.sets or {}) do was[k] = true end
    for q = at + 11, z0 - 1 do
      if now then now[ARGV[q]] = true end
      if not was[ARGV[q]] then
        local op = setOp(ARGV[q])
        op.add[#op.add + 1] = name
        op.addIds[#op.addIds + 1] = nid
      end
    end
    for k in pairs(was) do
      if not now[k] then
        local op = setOp(k)
        op.rem[#op.rem + 1] = name
        op.remIds[#op.remIds + 1] = nid
      end
    end
    local keepz = {}
    if o then
      local nowz = {}
      for q = z0, z0 + 2 * N - 1, 2 do nowz[ARGV[q]] = ARGV[q + 1] end
      for _, e in ipairs(o.zsets) do
        if nowz[e[1]] == e[2] then
          keepz[e[1]] = true
        else
          local op = zOp(e[1])
          op.rem[#op.rem + 1] = nid
        end
      end
    end
    for q = z0, z0 + 2 * N - 1, 2 do
      if not keepz[ARGV[q]] then
        local op = zOp(ARGV[q])
        op.add[#op.add + 1] = ARGV[q + 1]
        op.add[#op.add + 1] = nid
      end
    end
  end
end

-- Memberships: which are bitmaps (one HMGET), then one change per membership.
local flagged = {}
for i = 1, #setOrder, CHUNK do
  local f = redis.call('HMGET', KEYS[6], unpack(setOrder, i, math.min(i + CHUNK - 1, #setOrder)))
  for j = 1, #f do flagged[setOrder[i + j - 1]] = f[j] and true or false end
end
local function toBitmap(k)
  local b = bitsOf[k]
  each(redis.call('SMEMBERS', k), CHUNK, function(...)
    local known = {}
    for _, id in ipairs(redis.call('HMGET', KEYS[3], ...)) do
      if id then known[#known + 1] = id end
    end
    setBits(b, known, 1)
  end)
  redis.call('DEL', k)
  redis.call('HSET', KEYS[6], k, 1)
end
-- Rare fact values: per bucket, the records to drop and to add, and the digests added to.
local buckets, bucketOrder = {}, {}
local function bucketOp(key)
  local op = buckets[key]
  if not op then
    op = {drop = {}, add = {}, added = {}, addedIds = {}, addedOrder = {}}
    buckets[key] = op
    bucketOrder[#bucketOrder + 1] = key
  end
  return op
end
local function record(d, nid)
  local n = tonumber(nid)
  return d .. string.char(math.floor(n / 256), n % 256)
end
-- The offsets set in a bitmap.
local function bitOffsets(s)
  local out = {}
  for i = 1, #s do
    local byte = string.byte(s, i)
    for b = 7, 0, -1 do
      if byte >= 2 ^ b then
        out[#out + 1] = (i - 1) * 8 + 7 - b
        byte = byte - 2 ^ b
      end
    end
  end
  return out
end
-- Adds to wanted[d] the offset of each record of digest d in s, for the digests wanted names.
local function collect(s, wanted)
  for i = 1, #s, RECORD do
    local ids = wanted[string.sub(s, i, i + RECORD - 3)]
    if ids then ids[#ids + 1] = string.byte(s, i + RECORD - 2) * 256 + string.byte(s, i + RECORD - 1) end
  end
end
-- The records of s without those `drop` names (by record, or by digest with `byDigest`).
local function without(s, drop, byDigest)
  local parts = {}
  for i = 1, #s, RECORD do
    local r = string.sub(s, i, i + RECORD - 1)
    if not drop[byDigest and string.sub(r, 1, RECORD - 2) or r] then parts[#parts + 1] = r end
  end
  return parts
end

for _, k in ipairs(setOrder) do
  local op = setOps[k]
  local d = digestOf[k]
  if flagged[k] then
    local b = bitsOf[k]
    if #op.remIds > 0 then setBits(b, op.remIds, 0) end
    if #op.addIds > 0 then setBits(b, op.addIds, 1) end
    if d and #op.remIds > 0 then
      local n = redis.call('BITCOUNT', b)
      if n < demoteBelow then
        -- A fact value held by few nodes again goes back to records (none: it is gone).
        local bop = bucketOp(bucketOf[k])
        if n > 0 then
          for _, id in ipairs(bitOffsets(redis.call('GET', b))) do bop.add[#bop.add + 1] = record(d, id) end
        end
        redis.call('DEL', b)
        redis.call('HDEL', KEYS[6], k)
      end
    end
  elseif d and redis.call('EXISTS', k) == 0 then
    local bop = bucketOp(bucketOf[k])
    for _, id in ipairs(op.remIds) do bop.drop[record(d, id)] = true end
    for _, id in ipairs(op.addIds) do bop.add[#bop.add + 1] = record(d, id) end
    if #op.addIds > 0 then
      bop.added[d] = k
      bop.addedIds[d] = op.addIds
      bop.addedOrder[#bop.addedOrder + 1] = d
    end
  else
    each(op.rem, CHUNK, function(...) redis.call('SREM', k, ...) end)
    if #op.add > 0 then
      each(op.add, CHUNK, function(...) redis.call('SADD', k, ...) end)
      if redis.call('SCARD', k) >= minMembers then toBitmap(k) end
    end
  end
end

-- Buckets of rare values: each read and written once; a value whose records reach the
-- threshold moves to its bitmap.
for _, key in ipairs(bucketOrder) do
  local op = buckets[key]
  local old = redis.call('GET', key) or ''
  local kept = next(op.drop) and table.concat(without(old, op.drop, false)) or old
  -- Each value's records: those added, and those already there (most values added are new to
  -- the bucket: one search each says so).
  local holders, stored = {}, false
  for _, d in ipairs(op.addedOrder) do
    holders[d] = {unpack(op.addedIds[d])}
    stored = stored or string.find(kept, d, 1, true) ~= nil
  end
  if stored then collect(kept, holders) end
  local promoted, any = {}, false
  for _, d in ipairs(op.addedOrder) do
    if #holders[d] >= rareBelow then
      promoted[d] = holders[d]
      any = true
    end
  end
  local parts = any and without(kept, promoted, true) or {kept}
  for _, r in ipairs(op.add) do
    if not promoted[string.sub(r, 1, RECORD - 2)] then parts[#parts + 1] = r end
  end
  for _, d in ipairs(op.addedOrder) do
    if promoted[d] then
      setBits(bitsOf[op.added[d]], promoted[d], 1)
      redis.call('HSET', KEYS[6], op.added[d], 1)
    end
  end
  local s = table.concat(parts)
  -- Unchanged when the values added all moved to their bitmaps at once.
  if s ~= old then
    if s == '' then redis.call('DEL', key) else redis.call('SET', key, s) end
  end
end

-- Numeric facts: offsets scored by the number.
for _, k in ipairs(zOrder) do
  local op = zOps[k]
  each(op.rem, CHUNK, function(...) redis.call('ZREM', k, ...) end)
  each(op.add, CHUNK, function(...) redis.call('ZADD', k, ...) end)
end

-- The nodes themselves: online, last seen now.
local seen, nids, moved, movedOrder = {}, {}, {}, {}
for i, n in ipairs(nodes) do
  local at = n.at
  redis.call('HSET', KEYS[6 + i], 'identity', n.name, 'online', '1', 'last_seen', ARGV[at + 2],
    'facts', ARGV[at + 4], 'classes', ARGV[at + 5], 'agents', ARGV[at + 6], 'version', ARGV[at + 7],
    'session', ARGV[at + 3], 'index', ARGV[at + 8])
  if me ~= '' then
    redis.call('HSET', KEYS[6 + i], 'owner', me)
    if n.owner and n.owner ~= me then
      local k = ownerKey[n.owner]
      if not moved[k] then moved[k] = {}; movedOrder[#movedOrder + 1] = k end
      moved[k][#moved[k] + 1] = n.nid
    end
  end
  seen[#seen + 1] = ARGV[at + 2]; seen[#seen + 1] = n.name
  nids[#nids + 1] = n.nid
end
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[1], ...) end)
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[2], ...) end)
setBits(KEYS[4], nids, 1)
setBits(KEYS[5], nids, 1)
if me ~= '' then
  -- A reaped replica's bitmap is gone: it is not created again just to hold zeros.
  for _, k in ipairs(movedOrder) do
    if redis.call('EXISTS', k) == 1 then setBits(k, moved[k], 0) end
  end
  setBits(KEYS[ownerAt], nids, 1)
end
return 1
