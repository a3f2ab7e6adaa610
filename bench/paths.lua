-- wrk script: each request takes the next path from PATHS_FILE (one per line),
-- so every one-click POST unsubscribes a different recipient.
local method = os.getenv("WRK_METHOD") or "GET"
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

function init(args)
  index = offset * 1000003 % #paths
end

function request()
  index = index % #paths + 1
  if method == "POST" then
    return wrk.format("POST", paths[index],
      {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
  end
  return wrk.format("GET", paths[index])
end
