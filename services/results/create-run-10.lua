--[[
Purpose: create a run atomically: its record, one result per node and its first event, or
nothing at all when the run exists already.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[3]  the run's event log (stream)
KEYS[4]  the runs index (zset task id -> creation time in ms)
KEYS[5]  the index of the run's task (zset, same)
KEYS[6]  the index of the run's caller (zset, same)
KEYS[7]  the hosts of the run with a final result (set)
KEYS[8]  the run's node briefs (hash host -> brief, encoded as services/results/run-brief.ts says)
KEYS[9]  the run's header (hash: task, caller, nodes, state; services/results/run-header.ts)
KEYS[10] the run's host -> id of the event of its current result (hash)
ARGV[1]  the Run as proto JSON
ARGV[2]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[3]  the task id (the member of every index)
ARGV[4]  the run's creation time in ms (its score in every index)
ARGV[5]  the cap of the event log (entries)
ARGV[6], ARGV[7], ARGV[8], ARGV[9]  the header: task, caller, node count, RunState number
ARGV[10 .. 9 + 2n]  host, NodeResult proto JSON: one pair per node (n = ARGV[8])
ARGV[10 + 2n .. 9 + 4n]  host, its brief: one pair per node
Result:  1 when created; 0 when KEYS[1] exists (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Leftovers of a run that no longer has a record must not leak into the new one.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[9], 'task', ARGV[6], 'caller', ARGV[7], 'nodes', ARGV[8], 'state', ARGV[9])
-- Many fields per HSET (a call per field made a 100,000-node run hold Redis for seconds),
-- in slices that stay far below Lua's limit on unpacked values.
local n = tonumber(ARGV[8])
for k, key in ipairs({KEYS[2], KEYS[8]}) do
  local from = 10 + (k - 1) * 2 * n
  local last = from + 2 * n - 1
  for i = from, last, 2000 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 1999, last)))
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[2])
for k = 4, 6 do
  redis.call('ZADD', KEYS[k], ARGV[4], ARGV[3])
end
return 1
