--[[
Purpose: create a run atomically: its record, one result per node and its first event, or
nothing at all when the run exists already. Every key is the run's own (one hash tag); the
runs indexes are written by the caller beside this call (services/results/run-store.ts).
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash host -> brief, encoded as services/results/run-brief.ts says)
KEYS[6]  the run's header (hash: task, caller, nodes, state; services/results/run-header.ts)
KEYS[7]  the run's host -> id of the event of its current result (hash)
ARGV[1]  the Run as proto JSON
ARGV[2]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[3]  the cap of the event log (entries)
ARGV[4], ARGV[5], ARGV[6], ARGV[7]  the header: task, caller, node count, RunState number
ARGV[8 .. 7 + 2n]  host, NodeResult proto JSON: one pair per node (n = ARGV[6])
ARGV[8 + 2n .. 7 + 4n]  host, its brief: one pair per node
Result:  1 when created; 0 when KEYS[1] exists (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Leftovers of a run that no longer has a record must not leak into the new one.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[6], 'task', ARGV[4], 'caller', ARGV[5], 'nodes', ARGV[6], 'state', ARGV[7])
-- Many fields per HSET (a call per field made a 100,000-node run hold Redis for seconds),
-- in slices that stay far below Lua's limit on unpacked values.
local n = tonumber(ARGV[6])
for k, key in ipairs({KEYS[2], KEYS[5]}) do
  local from = 8 + (k - 1) * 2 * n
  local last = from + 2 * n - 1
  for i = from, last, 2000 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 1999, last)))
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
return 1
