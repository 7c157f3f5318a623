--[[
Purpose: write nodes from their Hellos and replace their inverted-index entries in one step, so
that a reader never sees a node under both its old and its new facts. The entries a node is in
are kept in its hash (field `index`, JSON) so that the next write can remove exactly those;
entries in both the old and the new list are left alone, and a Hello whose entries are those
already stored (a reconnect with unchanged facts) touches none. A node gets a dense id on its
first write (an RPUSH onto the id -> identity list, so ids are never reused). A membership is a
set of names until it reaches ARGV[2] members, then it is converted to a bitmap (the set is
deleted, KEYS[7] records it) and maintained with BITFIELD; the flag, not the size, says which
form a membership has, so writers with different thresholds never disagree. The nodes of one
call are distinct: their changes to a membership commute and are applied together (one SADD,
SREM or BITFIELD per membership), and a numeric value leaves the fact's distinct values only if
no node has it once the whole batch is applied. A class or agent name is added to its names set
by the write that creates its membership set. A stored index that is not valid JSON counts as no
entries (the node is then indexed anew rather than failing the batch of nodes written with it).
With a replica id, the nodes become that replica's (`owner` in the node hash, its bit in the
replica's owner bitmap), and leave the owner bitmap of the replica they had: the move is part of
the same write. A node whose previous owner is not among the replicas passed makes the script
answer {'UNKNOWN_OWNER', id} before writing anything, for the caller to pass that one too.
Keys not in KEYS: the membership sets, names sets and numeric-fact zsets come in ARGV (the new
entries) and from each node's stored `index` (the old ones, known only here); a membership's
bitmap is `<p>:bits:` + the set key after `<p>:`, and the distinct values of the numeric fact
`<p>:factnum:<path>` are in `<p>:factvals:<path>`, the rules RedisKeys.bitmapOf and
RedisKeys.factNumberValues (lib/redis.ts) apply, built here from ARGV[1].
KEYS[1]  every known node (zset identity -> last seen ms)
KEYS[2]  the online nodes (zset identity -> last seen ms)
KEYS[3]  the node ids (hash identity -> dense node id)
KEYS[4]  the node names (list id -> identity, append-only)
KEYS[5]  the all-nodes bitmap (over node ids)
KEYS[6]  the online bitmap (over node ids)
KEYS[7]  the membership sets held as bitmaps (hash set key -> 1)
KEYS[7 + i]  the hash of the i-th node (i = 1 .. B)
KEYS[8 + B]  with a replica id: its owner bitmap
KEYS[8 + B + j]  with a replica id: the owner bitmap of the j-th other replica (j = 1 .. K)
ARGV[1]  the key prefix <p>
ARGV[2]  the members from which a membership set becomes a bitmap
ARGV[3]  B, the number of nodes
ARGV[4 ..]  B records of: identity, now (ms), session id, facts JSON, classes JSON, agents JSON,
         version, the node's entries as stored, JSON
         `{"sets": [key...], "zsets": [[key, score-as-text, value set key]...]}`, then the same
         entries as arguments: P, N and Z, then P fact value set keys, N times (class or agent
         set key, its names set key, the class or agent name), Z times (numeric fact zset key,
         score, value set key);
         after the records: the writing replica's id ('' for none), K, and the ids of K other
         replicas
Result:  1; or {'UNKNOWN_OWNER', id} when a node's owner is not among the replicas passed
         (nothing written)
]]
local prefix = ARGV[1]
local rest = #prefix + 2
local function bits(k) return prefix .. ':bits:' .. string.sub(k, rest) end
local function distinct(k) return prefix .. ':factvals:' .. string.sub(k, rest + 8) end
local minMembers = tonumber(ARGV[2])
-- unpack() pushes every value on Lua's bounded stack: long argument lists go in chunks.
local CHUNK = 1000
local function each(list, step, fn)
  for i = 1, #list, step do fn(unpack(list, i, math.min(i + step - 1, #list))) end
end
-- One BITFIELD per bitmap; ids are kept as text, as Redis takes them.
local function setBits(key, ids, value)
  local args, c = {}, 0
  for i = 1, #ids do
    args[c + 1] = 'SET'; args[c + 2] = 'u1'; args[c + 3] = ids[i]; args[c + 4] = value
    c = c + 4
  end
  each(args, CHUNK, function(...) redis.call('BITFIELD', key, ...) end)
end

local nodes = {}
local p = 4
for i = 1, tonumber(ARGV[3]) do
  local P, N, Z = tonumber(ARGV[p + 8]), tonumber(ARGV[p + 9]), tonumber(ARGV[p + 10])
  nodes[i] = {at = p, P = P, N = N, Z = Z, name = ARGV[p]}
  p = p + 11 + P + 3 * N + 3 * Z
end

-- Owners: each node's previous one must be among the replicas passed, checked before any write.
local B, me, ownerKey = tonumber(ARGV[3]), ARGV[p], {}
if me ~= '' then
  ownerKey[me] = KEYS[8 + B]
  for j = 1, tonumber(ARGV[p + 1]) do ownerKey[ARGV[p + 1 + j]] = KEYS[8 + B + j] end
  for i, n in ipairs(nodes) do
    local old = redis.call('HGET', KEYS[7 + i], 'owner')
    if old and not ownerKey[old] then return {'UNKNOWN_OWNER', old} end
    n.owner = old
  end
end

-- Ids: existing ones in one HMGET, new ones appended in one RPUSH.
local names = {}
for i, n in ipairs(nodes) do names[i] = n.name end
local ids = redis.call('HMGET', KEYS[3], unpack(names))
local fresh = {}
for i, n in ipairs(nodes) do
  if ids[i] then n.nid = ids[i] else fresh[#fresh + 1] = n end
end
if #fresh > 0 then
  local list, idOf = {}, {}
  for j, n in ipairs(fresh) do list[j] = n.name end
  local len = redis.call('RPUSH', KEYS[4], unpack(list))
  for j, n in ipairs(fresh) do
    n.nid = tostring(len - #fresh + j - 1)
    idOf[#idOf + 1] = n.name
    idOf[#idOf + 1] = n.nid
  end
  redis.call('HSET', KEYS[3], unpack(idOf))
end

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
local SET_FIELDS, Z_FIELDS = {'add', 'addIds', 'rem', 'remIds'}, {'add', 'rem', 'values', 'gone'}
local function setOp(k) return opOf(setOps, setOrder, SET_FIELDS, k) end
local function zOp(k) return opOf(zOps, zOrder, Z_FIELDS, k) end
local function addTo(k, name, nid)
  local op = setOp(k)
  local c = #op.add + 1
  op.add[c] = name
  op.addIds[c] = nid
  return op
end
for i, n in ipairs(nodes) do
  local at, P, N, Z, name, nid = n.at, n.P, n.N, n.Z, n.name, n.nid
  local named, z0 = at + 11 + P, at + 11 + P + 3 * N
  local old = redis.call('HGET', KEYS[7 + i], 'index')
  if old ~= ARGV[at + 7] then
    -- The stored entries; none for a node indexed for the first time, which then skips every
    -- comparison (most of a registration storm's nodes).
    local o
    if old then
      local ok, decoded = pcall(cjson.decode, old)
      o = ok and type(decoded) == 'table' and decoded or {}
    end
    local was, now = {}, o and {}
    for _, k in ipairs(o and o.sets or {}) do was[k] = true end
    for q = at + 11, named - 1 do
      if now then now[ARGV[q]] = true end
      if not was[ARGV[q]] then addTo(ARGV[q], name, nid) end
    end
    for q = named, z0 - 1, 3 do
      if now then now[ARGV[q]] = true end
      if not was[ARGV[q]] then
        local op = addTo(ARGV[q], name, nid)
        op.namesKey, op.label = ARGV[q + 1], ARGV[q + 2]
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
    if o and o.zsets then
      local nowz = {}
      for q = z0, z0 + 3 * Z - 1, 3 do nowz[ARGV[q]] = ARGV[q + 1] .. ' ' .. ARGV[q + 2] end
      for _, e in ipairs(o.zsets) do
        if nowz[e[1]] == e[2] .. ' ' .. (e[3] or '') then
          keepz[e[1]] = true
        else
          local op = zOp(e[1])
          op.rem[#op.rem + 1] = name
          if e[3] then op.gone[#op.gone + 1] = e[3] end
        end
      end
    end
    for q = z0, z0 + 3 * Z - 1, 3 do
      if not keepz[ARGV[q]] then
        local op = zOp(ARGV[q])
        local c = #op.add
        op.add[c + 1] = ARGV[q + 1]; op.add[c + 2] = name
        op.values[c + 1] = ARGV[q + 1]; op.values[c + 2] = ARGV[q + 2]
      end
    end
  end
end

-- Memberships: which are bitmaps (one HMGET), then one change per membership.
local flagged = {}
for i = 1, #setOrder, CHUNK do
  local f = redis.call('HMGET', KEYS[7], unpack(setOrder, i, math.min(i + CHUNK - 1, #setOrder)))
  for j = 1, #f do flagged[setOrder[i + j - 1]] = f[j] and true or false end
end
local function toBitmap(k)
  local b = bits(k)
  each(redis.call('SMEMBERS', k), CHUNK, function(...)
    local known = {}
    for _, id in ipairs(redis.call('HMGET', KEYS[3], ...)) do
      if id then known[#known + 1] = id end
    end
    setBits(b, known, 1)
  end)
  redis.call('DEL', k)
  redis.call('HSET', KEYS[7], k, 1)
  flagged[k] = true
end
for _, k in ipairs(setOrder) do
  local op = setOps[k]
  if flagged[k] then
    local b = bits(k)
    if #op.remIds > 0 then setBits(b, op.remIds, 0) end
    if #op.addIds > 0 then setBits(b, op.addIds, 1) end
  else
    each(op.rem, CHUNK, function(...) redis.call('SREM', k, ...) end)
    if #op.add > 0 then
      local new = 0
      each(op.add, CHUNK, function(...) new = new + redis.call('SADD', k, ...) end)
      local size = redis.call('SCARD', k)
      if op.namesKey and size == new then redis.call('SADD', op.namesKey, op.label) end
      if size >= minMembers then toBitmap(k) end
    end
  end
end

-- Numeric facts: members and scores, then the distinct values no node has any more.
local function empty(k)
  if flagged[k] == nil then flagged[k] = redis.call('HEXISTS', KEYS[7], k) == 1 end
  if flagged[k] then return redis.call('BITCOUNT', bits(k)) == 0 end
  return redis.call('SCARD', k) == 0
end
for _, k in ipairs(zOrder) do
  local op, d, checked = zOps[k], distinct(k), {}
  each(op.rem, CHUNK, function(...) redis.call('ZREM', k, ...) end)
  for _, v in ipairs(op.gone) do
    if not checked[v] then
      checked[v] = true
      if empty(v) then redis.call('ZREM', d, v) end
    end
  end
  each(op.add, CHUNK, function(...) redis.call('ZADD', k, ...) end)
  each(op.values, CHUNK, function(...) redis.call('ZADD', d, ...) end)
end

-- The nodes themselves: online, last seen now.
local seen, nids, moved, movedOrder = {}, {}, {}, {}
for i, n in ipairs(nodes) do
  local at = n.at
  redis.call('HSET', KEYS[7 + i], 'identity', n.name, 'online', '1', 'last_seen', ARGV[at + 1],
    'facts', ARGV[at + 3], 'classes', ARGV[at + 4], 'agents', ARGV[at + 5], 'version', ARGV[at + 6],
    'session', ARGV[at + 2], 'index', ARGV[at + 7])
  if me ~= '' then
    redis.call('HSET', KEYS[7 + i], 'owner', me)
    if n.owner and n.owner ~= me then
      local k = ownerKey[n.owner]
      if not moved[k] then moved[k] = {}; movedOrder[#movedOrder + 1] = k end
      moved[k][#moved[k] + 1] = n.nid
    end
  end
  seen[#seen + 1] = ARGV[at + 1]; seen[#seen + 1] = n.name
  nids[#nids + 1] = n.nid
end
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[1], ...) end)
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[2], ...) end)
setBits(KEYS[5], nids, 1)
setBits(KEYS[6], nids, 1)
if me ~= '' then
  -- A reaped replica's bitmap is gone: it is not created again just to hold zeros.
  for _, k in ipairs(movedOrder) do
    if redis.call('EXISTS', k) == 1 then setBits(k, moved[k], 0) end
  end
  setBits(KEYS[8 + B], nids, 1)
end
return 1
