--[[
Purpose: take a fencing epoch and a lease under a new replica id, `<name>-<epoch>`, on the Redis
clock (TIME), so that replicas whose clocks differ agree on when a lease ended. An id is never
used twice: a replica that lost its lease comes back as a new one, and whatever survivors do with
the old id's nodes and backlog never meets the new one.
KEYS[1]  the fencing epoch counter (string, INCR)
KEYS[2]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
ARGV[1]  the replica name
ARGV[2]  the lease, in ms
Result:  {epoch, replica id}
]]
local epoch = redis.call('INCR', KEYS[1])
local id = ARGV[1] .. '-' .. epoch
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
return {epoch, id}
