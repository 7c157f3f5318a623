--[[
Purpose: renew a replica's lease, only while it has not ended (once it ended, survivors may have
claimed the replica's nodes and backlog: it must join again, as a new replica). Also answers every
replica's lease, for the caller's view of its peers.
KEYS[1]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
ARGV[1]  the replica id
ARGV[2]  the lease, in ms
Result:  {code, now, id1, end1, id2, end2, ...}: code 1 renewed, -2 the lease had ended (or was
         removed); now is the Redis clock in ms; then every replica and its lease end
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local code = 1
local ends = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if ends < now then code = -2 else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
local out = {code, now}
for _, v in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')) do out[#out + 1] = v end
return out
