--[[
Purpose: end a replica's lease at once (a clean shutdown): survivors take over its dispatch
backlog without waiting for the lease to run out.
KEYS[1]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
ARGV[1]  the replica id
Result:  1 when ended; 0 when it had no lease
]]
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1
