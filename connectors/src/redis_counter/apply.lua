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
--       per source, per chunk: the chunk, its tuple count n, the first byte lo of the
--       tuples' bits, the mask (the bytes from lo with the tuples' bits set), and the
--       tuples, 8 bytes each in ascending bit order: the bit (2 bytes) and the tuple's
--       writes a and b (3 bytes each, 1-based, 0: none), all big-endian.
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
local skipped, total = 0, 0
local function skip(tuples, t)
  skipped = skipped + 1
  local a1, a2, a3, b1, b2, b3 = string.byte(tuples, 8 * t + 3, 8 * t + 8)
  local a, b = a1 * 65536 + a2 * 256 + a3, b1 * 65536 + b2 * 256 + b3
  if a > 0 then count[a] = count[a] - 1 end
  if b > 0 then count[b] = count[b] - 1 end
end
local function bit_of(tuples, t)
  local h, l = string.byte(tuples, 8 * t + 1, 8 * t + 2)
  return h * 256 + l
end
-- string.byte and unpack take at most a few thousand values at once.
local SLICE = 4000
for s = 1, ns do
  local S = src[s]
  for c = 0, S.nc - 1 do
    local key, chunk, n, lo = KEYS[S.key + c], tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local mask, tuples = ARGV[at + 3], ARGV[at + 4]
    at = at + 5
    total = total + n
    local low = (S.floor - chunk * per) * stride
    local first = 0
    while first < n and bit_of(tuples, first) < low do
      skip(tuples, first)
      first = first + 1
    end
    if first < n then
      if chunk > S.top then S.top = chunk end
      -- The bytes from the first tuple at or above the floor: read, OR-ed with the mask,
      -- written back. A bit of the mask already set is a tuple applied before; the bits
      -- before the first tuple's in its byte are below the floor, not checked.
      local bit0 = bit_of(tuples, first)
      local from = math.floor(bit0 / 8)
      local len = #mask - (from - lo)
      local old, seen = {}, false
      for i = 0, len - 1, SLICE do
        local j = math.min(i + SLICE, len)
        local o = redis.call('GETRANGE', key, from + i, from + j - 1)
        old[#old + 1] = o
        local out = {string.byte(mask, from - lo + i + 1, from - lo + j)}
        local ob = {string.byte(o, 1, -1)}
        for k = 1, j - i do
          local x = ob[k]
          if x and x ~= 0 then
            local m = out[k]
            if i + k == 1 then m = bit.band(m, 2 ^ (8 - bit0 % 8) - 1) end
            if bit.band(x, m) ~= 0 then seen = true end
            out[k] = bit.bor(x, out[k])
          end
        end
        redis.call('SETRANGE', key, from + i, string.char(unpack(out)))
      end
      if seen then
        old = table.concat(old)
        for t = first, n - 1 do
          local b = bit_of(tuples, t)
          local x = string.byte(old, math.floor(b / 8) - from + 1) or 0
          if bit.band(x, 2 ^ (7 - b % 8)) ~= 0 then skip(tuples, t) end
        end
      end
    end
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
