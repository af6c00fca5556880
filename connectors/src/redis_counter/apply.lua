-- redis-counter's exactly-once batch (see exactly_once.rs): applies, atomically, the
-- increments of the tuples not applied before, and raises each source's floor.
--
-- KEYS: the sources' sets of applied identities (ns of them), then the counters' sets
--       (nw of them, one per write).
-- ARGV: now, ns, the max floor seen per source (ns), nw, per write its kind ("i": ZINCRBY
--       by the number of new tuples, "s": ZADD now) and member (2 x nw), then the tuples
--       per source (below).
-- Reply: {applied, skipped} of the tuples sent. Every check comes before the first write,
-- so an error reply means nothing was written. Needs Redis 6.2 or later (ZMSCORE).
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
-- Per source (in KEYS order): its tuple count c, then c tuples of (offset, identity
-- member, writes) in ascending offset order without repeated members; writes is
-- a * (nw + 1) + b for the tuple's writes a and b (1-based, 0: none).
-- Below the source's floor (applied before, or given up, and trimmed): skipped. New
-- identities (absent from the set) are looked up and added a thousand at a time (ZMSCORE,
-- ZADD), within the limits of unpack.
local m = nw + 1
local applied, total = 0, 0
for s = 1, ns do
  local c = tonumber(ARGV[at])
  total = total + c
  local i, stop = at + 1, at + 1 + 3 * c
  local f = floor[s]
  while i < stop and tonumber(ARGV[i]) < f do i = i + 3 end
  while i < stop do
    local last = math.min(i + 3000, stop)
    local members, n = {}, 0
    for j = i + 1, last - 1, 3 do
      n = n + 1
      members[n] = ARGV[j]
    end
    local scores = redis.call('ZMSCORE', KEYS[s], unpack(members))
    local add, na, k = {}, 0, 0
    for j = i, last - 1, 3 do
      k = k + 1
      if not scores[k] then
        add[na + 1] = ARGV[j]
        add[na + 2] = ARGV[j + 1]
        na = na + 2
        local w = tonumber(ARGV[j + 2])
        if w > 0 then
          local a, b = math.floor(w / m), w % m
          if a > 0 then count[a] = count[a] + 1 end
          if b > 0 then count[b] = count[b] + 1 end
        end
      end
    end
    applied = applied + na / 2
    if na > 0 then redis.call('ZADD', KEYS[s], unpack(add)) end
    i = last
  end
  at = stop
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
return {applied, total - applied}
