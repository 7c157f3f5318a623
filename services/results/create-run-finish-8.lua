--[[
Purpose: last step of creating a run: once every node's pending result and brief is written
(create-run-slice-3), make the run visible in one atomic step (its record, header and first
event) and drop the creation claim. Readers and result recording look at the record and the
header only, so a run is never seen half-created.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash)
KEYS[6]  the run's header (hash: task, caller, nodes, state; services/results/run-header.ts)
KEYS[7]  the run's host -> id of the event of its current result (hash)
KEYS[8]  the run's creation claim
ARGV[1]  the token of this creation
ARGV[2]  the Run as proto JSON
ARGV[3]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[4]  the cap of the event log (entries)
ARGV[5], ARGV[6], ARGV[7], ARGV[8]  the header: task, caller, node count, RunState number
Result:  1 when created; 0 when the claim is not the caller's or the record exists; -1 when
         the results or briefs are not all there (removed meanwhile; nothing written)
]]
if redis.call('GET', KEYS[8]) ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local n = tonumber(ARGV[7])
if redis.call('HLEN', KEYS[2]) ~= n or redis.call('HLEN', KEYS[5]) ~= n then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[6], 'task', ARGV[5], 'caller', ARGV[6], 'nodes', ARGV[7], 'state', ARGV[8])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
redis.call('DEL', KEYS[8])
return 1
