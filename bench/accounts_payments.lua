-- wrk script: POST a 1-fen payment to a random one of ACCOUNTS accounts, each request with
-- a key of its own (thread, counter, run); counts the 200 answers so that the bench can
-- check that every acknowledged payment is in the database exactly once. With HEAVY > 0,
-- that share of the requests is a GET of an account's whole operation list instead (an
-- uneven request cost, for the load distributor's measurement).
local accounts = tonumber(os.getenv("ACCOUNTS") or "1000")
local heavy = tonumber(os.getenv("HEAVY") or "0")
local run = os.getenv("RUN") or "r"
-- PREFIX: a route prefix before /accounts (the bench's trivial deployment, Serve's floor)
local prefix = os.getenv("PREFIX") or ""
local threads = {}
-- globals, not locals: setup() sets "id" in each thread's state and done() reads "ok"
counter = 0
ok = 0
id = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(id * 7919 + os.time())
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  counter = counter + 1
  local account = math.random(1, accounts)
  if heavy > 0 and math.random() < heavy then
    return wrk.format("GET", prefix .. "/accounts/" .. account .. "/operations")
  end
  local body = string.format('{"amount_fen":1,"key":"%s-%d-%d"}', run, id, counter)
  return wrk.format("POST", prefix .. "/accounts/" .. account .. "/payments", headers, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 end
end

function done(summary, latency, requests)
  local acked = 0
  for _, thread in ipairs(threads) do acked = acked + thread:get("ok") end
  io.write(string.format("ACKED %d\n", acked))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d_US %d\n", p, latency:percentile(p)))
  end
end
