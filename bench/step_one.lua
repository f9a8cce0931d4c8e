-- wrk script: step one of the login (password) for bench users, round-robin per thread.
-- BENCH_USERS users named bench000001... share the password BENCH_PASSWORD.
local users = tonumber(os.getenv("BENCH_USERS"))
local password = os.getenv("BENCH_PASSWORD")
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  n = n + 1
  local user = ((id * 104729 + n) % users) + 1
  local body = string.format(
    '{"username": "bench%06d", "password": "%s", "platform": "portal"}', user, password)
  return wrk.format(nil, "/api/v1/logins", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
