--[[
Purpose: record node results of one run, at a cost per result that does not depend on the
number of nodes. Checks first, then writes: when any host is not a node of the run nothing is
written. Each result replaces the stored one unless the stored one is final and the new one is
not final or is a NO_RESPONSE (a real answer is never replaced by the lack of one, while a late
answer replaces a NO_RESPONSE), or the new one is identical; each replacement appends a RunEvent
in the same atomic step, so the event log never misses or duplicates a change. The event holds the result without
its output (the output is stored once, in KEYS[1]); KEYS[6] remembers which event recorded the
node's current result, so a reader gives that event its output.
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON): CreateRun gives every node
         an entry, so reading a host's entry answers membership
KEYS[2]  the run's event log (stream)
KEYS[3]  the run's header (hash task, caller, nodes, state)
KEYS[4]  the hosts of the run with a final result (set), kept here so that knowing whether the
         run is done never means reading every result
KEYS[5]  the run's node briefs (hash host -> brief, encoded as services/results/run-brief.ts says): each brief replaced
         with its result, when the run has this hash (runs created before briefs have none)
KEYS[6]  the run's host -> id of the event that recorded its current result (hash)
ARGV[1]  n, the number of results
ARGV[2], ARGV[3], ARGV[4]  the header the results were built from: task, caller, node count
ARGV[5]  the cap of the event log (entries)
ARGV[6 + 5i .. 10 + 5i], for i = 0 .. n-1:
         host; NodeResult as canonical proto JSON; '1' when its state is final, '2' when it is
         final but yields to a stored final result (NO_RESPONSE), else '0';
         the RunEvent (node_result, without output) to append when it is recorded, without id;
         its brief without the leading node position (kept from the stored brief)
Result:  {changed, final, state}: the number of results that changed what was stored, how many
         hosts now have a final result, and the run's state (RunState number) from the header;
         {-1} when the run has no header (removed, or created before headers: read the record);
         {-2} when the header differs from ARGV[2..4] (the caller's copy is stale);
         {-3, i, ...} the 0-based positions of the results whose host is not a node of the run
]]
local header = redis.call('HMGET', KEYS[3], 'task', 'caller', 'nodes', 'state')
if not header[1] then
  return {-1}
end
if header[1] ~= ARGV[2] or header[2] ~= ARGV[3] or header[3] ~= ARGV[4] then
  return {-2}
end
local n = tonumber(ARGV[1])
local unknown = {}
-- Each host's stored result, read once: its presence answers membership, its text whether a
-- new result changes anything (kept current below when one host comes twice).
local stored = {}
for i = 0, n - 1 do
  local host = ARGV[6 + 5 * i]
  stored[host] = stored[host] or redis.call('HGET', KEYS[1], host)
  if not stored[host] then
    unknown[#unknown + 1] = i
  end
end
if #unknown > 0 then
  table.insert(unknown, 1, -3)
  return unknown
end
local briefed = redis.call('EXISTS', KEYS[5]) == 1
local changed = 0
for i = 0, n - 1 do
  local base = 6 + 5 * i
  local host, result, flag = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local newFinal = flag ~= '0'
  -- A late RUNNING (or any non-final report), or a NO_RESPONSE, never overwrites a final result.
  local keep = flag ~= '1' and redis.call('SISMEMBER', KEYS[4], host) == 1
  if not keep then
    keep = stored[host] == result
  end
  if not keep then
    redis.call('HSET', KEYS[1], host, result)
    stored[host] = result
    if briefed then
      local position = string.match(redis.call('HGET', KEYS[5], host) or '', '^%d+')
      if position then
        redis.call('HSET', KEYS[5], host, position .. ',' .. ARGV[base + 4])
      end
    end
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[base + 3])
    redis.call('HSET', KEYS[6], host, id)
    if newFinal then
      redis.call('SADD', KEYS[4], host)
    else
      redis.call('SREM', KEYS[4], host)
    end
    changed = changed + 1
  end
end
return {changed, redis.call('SCARD', KEYS[4]), tonumber(header[4]) or 0}
