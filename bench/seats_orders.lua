-- wrk script for bench/seats_http.py: POST /orders, one sale per request, to a random
-- train-date of the bench's timetable (trains G1..G<TRAINS>, DAYS dates from 2026-10-01,
-- stations S1..S<STATIONS>), a random trip (from < to), class and count 1..MAX_COUNT; each
-- request has its own request_id (run, thread, counter).
--
-- Answers are counted by kind: 200 "sold" (a sale), 200 "sold_out" (an answer, no sale),
-- and the rest by status. The request_id of every sale answered is written to
-- OUT/<thread>.ids, so that the bench checks each acknowledged sale against the centres'
-- logs (none lost) and the audit (none doubled).
--
-- RATE > 0 holds a rate (requests/s over all threads) instead of going flat out: each
-- thread hands out send slots 1/rate apart (wrk's delay() before each request), so the
-- aggregate rate holds while a connection is free for each slot; LATE counts the requests
-- sent 5 ms or more after their slot (every connection busy), and the bench reports it
-- beside the latency, which wrk measures from the send.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec_t;
  int clock_gettime(int clock, timespec_t *ts);
]]
local ts = ffi.new("timespec_t")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local trains = tonumber(os.getenv("TRAINS") or "100")
local days = tonumber(os.getenv("DAYS") or "2")
local stations = tonumber(os.getenv("STATIONS") or "8")
local max_count = tonumber(os.getenv("MAX_COUNT") or "2")
local rate = tonumber(os.getenv("RATE") or "0")
local n_threads = tonumber(os.getenv("THREADS") or "1")
local out = os.getenv("OUT") or "/tmp"
local run = os.getenv("RUN") or "r"
local classes = { "second", "second", "second", "first" }
local headers = { ["Content-Type"] = "application/json" }
local threads = {}

-- globals, not locals: setup() sets "id" in each thread's state and done() reads the counts
id = 0
counter = 0
sold = 0
sold_out = 0
other = 0
late = 0
local ids_file = nil
local next_slot = nil
local gap_ms = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(id * 7919 + 17)
  ids_file = io.open(string.format("%s/%d.ids", out, id), "w")
  ids_file:setvbuf("line") -- wrk never closes a thread's Lua state: nothing may wait in a buffer
  if rate > 0 then gap_ms = 1000 * n_threads / rate end
end

function delay()
  if rate <= 0 then return 0 end
  local now = now_ms()
  if next_slot == nil then next_slot = now + math.random() * gap_ms end
  local wait = next_slot - now
  if wait <= -5 then late = late + 1 end
  next_slot = next_slot + gap_ms
  if wait < 0 then return 0 end
  return math.floor(wait + 0.5)
end

function request()
  counter = counter + 1
  local train = math.random(1, trains)
  local day = math.random(1, days)
  local a = math.random(1, stations - 1)
  local b = math.random(a + 1, stations)
  local body = string.format(
    '{"train_no":"G%d","date":"2026-10-%02d","from":"S%d","to":"S%d","class":"%s",' ..
    '"count":%d,"request_id":"%s-%d-%d"}',
    train, day, a, b, classes[math.random(1, #classes)], math.random(1, max_count),
    run, id, counter)
  return wrk.format("POST", "/orders", headers, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"status": "sold",', 1, true) then
    sold = sold + 1
    local rid = string.match(body, '"request_id": "([^"]+)"')
    ids_file:write(rid, "\n")
  elseif status == 200 and string.find(body, '"status": "sold_out"', 1, true) then
    sold_out = sold_out + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local totals = { sold = 0, sold_out = 0, other = 0, late = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
  end
  io.write(string.format("SOLD %d\nSOLD_OUT %d\nOTHER %d\nLATE %d\n", totals.sold,
                         totals.sold_out, totals.other, totals.late))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("P%s_US %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("MAX_US %d\n", latency.max))
end
