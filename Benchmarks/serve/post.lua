-- wrk (4.1.0) script: POST a predict request body with an API key, and print one JSON line at the end.
--
--   WRK_BODY_FILE=/tmp/body1.json WRK_API_KEY=... wrk -t2 -c64 -d60s --latency -s post.lua \
--       https://127.0.0.1:8443/v1/models/mlp-standard/predict
--
-- Environment:
--   WRK_BODY_FILE     the JSON body (make_body.py), read once when the script loads    (required)
--   WRK_API_KEY       the raw API key                                                   (required)
--   WRK_AUTH          "bearer" (Authorization: Bearer KEY, default) or "x-api-key"
--   WRK_LABEL         a free-form label copied into the JSON line (e.g. "flask")
--   WRK_CONNECTIONS   the -c value, copied into the JSON line (run_load.sh sets it; wrk doesn't tell Lua)
--   WRK_COUNT_STATUS  "1": count every status >= 300 in a response() callback (exact, but the
--                     callback makes wrk parse each response for Lua and costs wrk CPU). Default:
--                     non2xx = summary.errors.status, which wrk 4.1.0 increments for status > 399 only.
--
-- The JSON line: label, connections, threads, duration_s, requests, bytes, requests_per_s, errors {connect, read,
-- write, status, timeout}, non2xx, non2xx_counted_by, latency_ms {mean, stdev, max, p50, p90, p99}.

local function getenv_required(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    io.stderr:write("post.lua: set " .. name .. "\n")
    os.exit(2)
  end
  return v
end

local body_path = getenv_required("WRK_BODY_FILE")
local key = getenv_required("WRK_API_KEY")
local f, err = io.open(body_path, "rb")
if not f then
  io.stderr:write("post.lua: cannot read WRK_BODY_FILE: " .. tostring(err) .. "\n")
  os.exit(2)
end
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if (os.getenv("WRK_AUTH") or "bearer") == "x-api-key" then
  wrk.headers["X-API-Key"] = key
else
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- Per-thread counters live in each thread's Lua state; done() runs in the main state and reads
-- them through the thread objects collected by setup().
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

non2xx = 0
local count_status = os.getenv("WRK_COUNT_STATUS") == "1"
if count_status then
  function response(status, headers, body)
    if status >= 300 then
      non2xx = non2xx + 1
    end
  end
end

local function ms(us)
  return string.format("%.3f", us / 1000.0)
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad, counted_by = e.status, "errors.status (>399)"
  if count_status then
    bad, counted_by = 0, "response() (>=300)"
    for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
    end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"label":%s,"connections":%s,"threads":%d,"duration_s":%.3f,"requests":%d,"bytes":%d,"requests_per_s":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"non2xx":%d,"non2xx_counted_by":%s,' ..
    '"latency_ms":{"mean":%s,"stdev":%s,"max":%s,"p50":%s,"p90":%s,"p99":%s}}\n',
    json_string(os.getenv("WRK_LABEL") or ""), tonumber(os.getenv("WRK_CONNECTIONS") or "") or "null", #threads, seconds, summary.requests, summary.bytes,
    summary.requests / seconds, e.connect, e.read, e.write, e.status, e.timeout, bad, json_string(counted_by),
    ms(latency.mean), ms(latency.stdev), ms(latency.max),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99))))
end
