--[[
Purpose: first step of creating a run (services/results/run-store.ts createRun): claim the
creation for one caller's token, so that the run is created once, and remove what an earlier
attempt that never finished left; nothing when the run exists or another attempt holds a live
claim. The run stays invisible (no record, no header) until create-run-finish-8 writes them.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash)
KEYS[6]  the run's header (hash)
KEYS[7]  the run's host -> id of the event of its current result (hash)
KEYS[8]  the run's creation claim (string: the creating call's token, with a time to live)
ARGV[1]  the token of this creation
ARGV[2]  the claim's time to live, in ms (renewed by each slice)
Result:  1 when claimed; 0 when KEYS[1] exists or another creation holds the claim (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not redis.call('SET', KEYS[8], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
-- Leftovers (a run that no longer has a record, an attempt that died half-way) must not leak
-- into the new run; UNLINK frees a large hash in the background instead of holding Redis.
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
return 1
