-- redis-counter's exactly-once batch (see exactly_once.rs): applies, atomically, the
-- increments of the tuples not applied before, and raises each source's floor.
--
-- Per source S: a hash KEYS[state] = P squall:eo:{S} with its floor, the highest chunk
-- written (top) and the stride; and bitmaps P squall:eo:{S}:<chunk>, one bit per tuple at
-- (offset - chunk * per) * stride + index, for offsets from chunk * per on.
--
-- KEYS: per source its state, then the chunks the batch touches; then the counters' sets
--       (nw of them, one per write).
-- ARGV: now, ns, nw, stride, per (offsets per chunk); per source the highest floor of the
--       batch and its number of chunks (2 x ns); per write its kind ("i": ZINCRBY, "s":
--       ZADD now), member and the number of the batch's tuples it counts (3 x nw); then
--       per source, per chunk: the chunk, its tuple count n, BITFIELD's operations for
--       them (SET u1 <bit> 1, 4 x n, bits ascending), and each tuple's writes a * (nw + 1)
--       + b (n; 1-based, 0: none).
-- Reply: {applied, skipped} of the tuples sent. Every check comes before the first write,
-- so an error reply means nothing was written.
local now = ARGV[1]
local ns, nw = tonumber(ARGV[2]), tonumber(ARGV[3])
local stride, per = ARGV[4], tonumber(ARGV[5])
local function check(key, want)
  local t = redis.call('TYPE', key).ok
  if t ~= want and t ~= 'none' then
    return 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want .. '; nothing of the batch was applied'
  end
end
local src, k, at = {}, 0, 6
for s = 1, ns do
  local state, nc = KEYS[k + 1], tonumber(ARGV[at + 1])
  local bad = check(state, 'hash')
  if bad then return redis.error_reply(bad) end
  for c = 1, nc do
    bad = check(KEYS[k + 1 + c], 'string')
    if bad then return redis.error_reply(bad) end
  end
  local st = redis.call('HMGET', state, 'floor', 'top', 'stride')
  if st[3] and st[3] ~= stride then
    return redis.error_reply('ERR ' .. state .. ' holds bits of ' .. st[3] .. ' tuples per record, not ' .. stride ..
      ' (exactly_once.tuples_per_record changed with records in flight); nothing of the batch was applied')
  end
  src[s] = {state = state, floor = tonumber(st[1] or '0'), top = tonumber(st[2] or '-1'),
    raise = tonumber(ARGV[at]), nc = nc, key = k + 2}
  k, at = k + 1 + nc, at + 2
end
local kind, member, count = {}, {}, {}
for w = 1, nw do
  local bad = check(KEYS[k + w], 'zset')
  if bad then return redis.error_reply(bad) end
  kind[w], member[w], count[w] = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  at = at + 3
end
-- A tuple below the stored floor, or whose bit was set, is skipped: its writes lose it.
local m = nw + 1
local skipped, total = 0, 0
local function skip(ref)
  skipped = skipped + 1
  local w = tonumber(ref)
  if w > 0 then
    local a, b = math.floor(w / m), w % m
    if a > 0 then count[a] = count[a] - 1 end
    if b > 0 then count[b] = count[b] - 1 end
  end
end
for s = 1, ns do
  local S = src[s]
  for c = 0, S.nc - 1 do
    local key, chunk, n = KEYS[S.key + c], tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local ops, refs = at + 2, at + 2 + 4 * n
    total = total + n
    local low = (S.floor - chunk * per) * stride
    local i = 0
    while i < n and tonumber(ARGV[ops + 4 * i + 2]) < low do
      skip(ARGV[refs + i])
      i = i + 1
    end
    if i < n and chunk > S.top then S.top = chunk end
    -- SET returns each bit's old value; a thousand operations a call (unpack's limit).
    while i < n do
      local j = math.min(i + 1000, n)
      local old = redis.call('BITFIELD', key, unpack(ARGV, ops + 4 * i, ops + 4 * j - 1))
      for t = 1, j - i do
        if old[t] == 1 then skip(ARGV[refs + i + t - 1]) end
      end
      i = j
    end
    at = refs + n
  end
end
for w = 1, nw do
  if count[w] > 0 then
    if kind[w] == 'i' then
      redis.call('ZINCRBY', KEYS[k + w], count[w], member[w])
    else
      redis.call('ZADD', KEYS[k + w], now, member[w])
    end
  end
end
-- Raise the floors; the chunks wholly below a floor are deleted (chunks exist only from
-- the old floor's up to top, so this stays within the records in flight).
for s = 1, ns do
  local S = src[s]
  local floor = S.floor
  if S.raise > floor then
    floor = S.raise
    for c = math.floor(S.floor / per), math.min(S.top, math.floor(floor / per) - 1) do
      redis.call('DEL', S.state .. ':' .. string.format('%d', c))
    end
  end
  redis.call('HSET', S.state, 'floor', string.format('%d', floor), 'top', string.format('%d', S.top),
    'stride', stride)
end
return {total - skipped, skipped}
