-- redis-counter's exactly-once batch (see exactly_once.rs): applies, atomically, the
-- increments of the tuples not applied before, and raises each source's floor.
--
-- KEYS: the sources' sets of applied identities (ns of them), then the counters' sets
--       (nw of them, one per write).
-- ARGV: now, ns, the max floor seen per source (ns), nw, per write its kind ("i": ZINCRBY
--       by the number of new tuples, "s": ZADD now) and member (2 x nw), nt, per tuple its
--       source (1-based), offset, identity member and writes (1-based, 0: none) (5 x nt).
-- Reply: {applied, skipped}. Every check comes before the first write, so an error reply
-- means nothing was written. Needs Redis 6.2 or later (ZMSCORE).
local now = ARGV[1]
local ns = tonumber(ARGV[2])
local floor, raise = {}, {}
for s = 1, ns do
  local t = redis.call('TYPE', KEYS[s]).ok
  if t ~= 'zset' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[s] .. ' holds a ' .. t .. ', not a sorted set; nothing of the batch was applied')
  end
  floor[s] = tonumber(redis.call('ZSCORE', KEYS[s], 'floor') or '0')
  raise[s] = ARGV[2 + s]
end
local at = 3 + ns
local nw = tonumber(ARGV[at])
local kind, member, count = {}, {}, {}
for w = 1, nw do
  local key = KEYS[ns + w]
  local t = redis.call('TYPE', key).ok
  if t ~= 'zset' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a sorted set; nothing of the batch was applied')
  end
  kind[w] = ARGV[at + 2 * w - 1]
  member[w] = ARGV[at + 2 * w]
  count[w] = 0
end
at = at + 2 * nw + 1
local nt = tonumber(ARGV[at])
-- The tuples of each source at or above its floor (below it: applied before, or given
-- up, and trimmed), by their first ARGV index.
local by = {}
for s = 1, ns do by[s] = {} end
for t = 0, nt - 1 do
  local i = at + 5 * t
  local s = tonumber(ARGV[i + 1])
  if tonumber(ARGV[i + 2]) >= floor[s] then
    local list = by[s]
    list[#list + 1] = i
  end
end
-- New identities: absent from the set and not earlier in this batch. Looked up and added
-- a thousand at a time (ZMSCORE, ZADD), within the limits of unpack.
local applied = 0
for s = 1, ns do
  local list, seen = by[s], {}
  for c = 1, #list, 1000 do
    local last = math.min(c + 999, #list)
    local members = {}
    for j = c, last do members[#members + 1] = ARGV[list[j] + 3] end
    local scores = redis.call('ZMSCORE', KEYS[s], unpack(members))
    local add = {}
    for j = c, last do
      local i = list[j]
      local m = ARGV[i + 3]
      if not scores[j - c + 1] and not seen[m] then
        seen[m] = true
        add[#add + 1] = ARGV[i + 2]
        add[#add + 1] = m
        applied = applied + 1
        local a, b = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
        if a > 0 then count[a] = count[a] + 1 end
        if b > 0 then count[b] = count[b] + 1 end
      end
    end
    if #add > 0 then redis.call('ZADD', KEYS[s], unpack(add)) end
  end
end
for w = 1, nw do
  if count[w] > 0 then
    if kind[w] == 'i' then
      redis.call('ZINCRBY', KEYS[ns + w], count[w], member[w])
    else
      redis.call('ZADD', KEYS[ns + w], now, member[w])
    end
  end
end
for s = 1, ns do
  if tonumber(raise[s]) > floor[s] then
    redis.call('ZADD', KEYS[s], raise[s], 'floor')
    redis.call('ZREMRANGEBYSCORE', KEYS[s], '-inf', '(' .. raise[s])
  end
end
return {applied, nt - applied}
