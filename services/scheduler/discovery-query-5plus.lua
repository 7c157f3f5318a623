--[[
Purpose: read, in one atomic step, everything a discovery query needs from the index: the number
of node ids, the all-nodes and online bitmaps, the identities whose heartbeat is stale, the owner
bitmaps of the replicas whose lease ended (their nodes are not online), and one reply per leaf of
the plan, always {bitmap, members} (either may be empty; the leaf is their union). A KEY leaf
answers the set's bitmap when it has one, else the set's members (few). A RANGE leaf ORs the sets
of the numeric fact's distinct values in range: the bitmaps with BITOP (into KEYS[5], deleted at
once), the small sets as members; over more than ARGV[4] distinct values (a fact unique to each
node) it answers the names in range from the fact's zset.
Keys not in KEYS: a RANGE leaf's value sets are members of its distinct-values zset, known only
here, read with their bitmaps, `<p>:bits:` + the set key after `<p>:` (RedisKeys.bitmapOf in
lib/redis.ts), built here from ARGV[3].
KEYS[1]  the node names (list id -> identity)
KEYS[2]  the all-nodes bitmap (over node ids)
KEYS[3]  the online bitmap (over node ids)
KEYS[4]  the online nodes (zset identity -> last seen ms)
KEYS[5]  a temporary key for a RANGE leaf's BITOP
KEYS[6 + 2l], KEYS[7 + 2l]  per leaf l = 0 .. L-1: a KEY leaf's bitmap and its set; a RANGE
         leaf's distinct values (zset of value set keys by number) and its zset of names
KEYS[6 + 2L + d]  the owner bitmaps of the D replicas whose lease ended (d = 0 .. D-1)
ARGV[1]  last-seen ms below which a node is stale
ARGV[2]  one letter per leaf, K or R
ARGV[3]  the key prefix <p>
ARGV[4]  the most distinct values a RANGE leaf ORs before reading names instead
ARGV[5]  D
ARGV[6 ..]  min and max (ZRANGEBYSCORE syntax) of each RANGE leaf, in order
Result:  {id count, all bitmap, online bitmap, stale identities, {dead owner bitmap...},
         {bitmap, members} per leaf...}
]]
local rest = #ARGV[3] + 2
local function bits(k) return ARGV[3] .. ':bits:' .. string.sub(k, rest) end
local out = {
  redis.call('LLEN', KEYS[1]),
  redis.call('GET', KEYS[2]) or '',
  redis.call('GET', KEYS[3]) or '',
  redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[1]),
}
local dead = {}
for i = #KEYS - tonumber(ARGV[5]) + 1, #KEYS do dead[#dead + 1] = redis.call('GET', KEYS[i]) or '' end
out[5] = dead
local maxValues = tonumber(ARGV[4])
local k, a = 6, 6
for i = 1, #ARGV[2] do
  if string.sub(ARGV[2], i, i) == 'K' then
    local b = redis.call('GET', KEYS[k])
    if b then out[#out + 1] = {b, {}} else out[#out + 1] = {'', redis.call('SMEMBERS', KEYS[k + 1])} end
  else
    local values = redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[a], ARGV[a + 1], 'LIMIT', 0, maxValues + 1)
    if #values > maxValues then
      out[#out + 1] = {'', redis.call('ZRANGEBYSCORE', KEYS[k + 1], ARGV[a], ARGV[a + 1])}
    else
      local big, small = {}, {}
      for _, v in ipairs(values) do
        local b = bits(v)
        if redis.call('EXISTS', b) == 1 then
          big[#big + 1] = b
        else
          for _, m in ipairs(redis.call('SMEMBERS', v)) do small[#small + 1] = m end
        end
      end
      local bm = ''
      if #big == 1 then
        bm = redis.call('GET', big[1])
      elseif #big > 1 then
        redis.call('BITOP', 'OR', KEYS[5], unpack(big))
        bm = redis.call('GET', KEYS[5])
        redis.call('DEL', KEYS[5])
      end
      out[#out + 1] = {bm, small}
    end
    a = a + 2
  end
  k = k + 2
end
return out
