--[[
Purpose: one slice of creating a run: the pending results and briefs of some of its nodes,
written only while the caller still holds the creation claim (create-run-begin-8). A slice is
small, so no call holds Redis for long whatever the size of the run.
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[2]  the run's node briefs (hash host -> brief, encoded as services/results/run-brief.ts says)
KEYS[3]  the run's creation claim
ARGV[1]  the token of this creation
ARGV[2]  the claim's time to live, in ms (renewed here)
ARGV[3]  n, the nodes of this slice
ARGV[4 .. 3 + 2n]  host, NodeResult proto JSON: one pair per node
ARGV[4 + 2n .. 3 + 4n]  host, its brief: one pair per node
Result:  1 when written; 0 when the claim is not the caller's (nothing written)
]]
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
  redis.call('HSET', KEYS[2], unpack(ARGV, 4 + 2 * n, 3 + 4 * n))
end
return 1
