-- wrk script: each request takes the next line of LINES_FILE, starting at a
-- different place per thread.
-- Without WRK_PATH a line is a path: GET it, or (WRK_METHOD=POST) send it an
-- RFC 8058 one-click body, so every POST unsubscribes a different recipient.
-- With WRK_PATH a line is a JSON body, posted there with the API_KEY bearer.
local method = os.getenv("WRK_METHOD") or "GET"
local path = os.getenv("WRK_PATH")
local key = os.getenv("API_KEY") or ""
local lines = {}
for line in io.lines(os.getenv("LINES_FILE")) do lines[#lines + 1] = line end
local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

function init(args)
  index = offset * 1000003 % #lines
end

function request()
  index = index % #lines + 1
  if path then
    return wrk.format("POST", path,
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, lines[index])
  end
  if method == "POST" then
    return wrk.format("POST", lines[index],
      {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
  end
  return wrk.format("GET", lines[index])
end
