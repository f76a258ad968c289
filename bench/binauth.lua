-- wrk script for the HTTP binary-auth benchmark (bench/run.py).
-- Replays pre-built 20-byte requests from the file named by JANUA_PACKETS, in order, as
-- POST /v1/binauth bodies, and counts replies whose HTTP status is 200 (authenticated).
-- Run wrk with one thread: the file interleaves devices round-robin, so a device's next request
-- is issued thousands of requests after its previous one and timestamps arrive in order.
local packets = {}
local n, i = 0, 0
local ok, other = 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("JANUA_PACKETS"), "rb"))
  local data = f:read("*a")
  f:close()
  for off = 1, #data - 19, 20 do
    n = n + 1
    packets[n] = data:sub(off, off + 19)
  end
  wrk.method = "POST"
  wrk.path = "/v1/binauth"
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format(nil, nil, nil, packets[i])
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
  wrk.thread:set("ok", ok)
  wrk.thread:set("other", other)
end

function done(summary, latency, requests)
  local tok, toth = 0, 0
  for _, t in ipairs(threads) do
    tok = tok + (t:get("ok") or 0)
    toth = toth + (t:get("other") or 0)
  end
  io.write(string.format('JSON {"requests": %d, "ok": %d, "other": %d, "seconds": %.3f, "errors": %d, "p99_ms": %.3f}\n',
    summary.requests, tok, toth, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(99) / 1000))
end
