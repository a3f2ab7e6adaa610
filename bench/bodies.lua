-- wrk script: POST each body of BODIES_FILE (one JSON document a line) in
-- turn to WRK_PATH, with the API key of API_KEY.
local bodies = {}
for line in io.lines(os.getenv("BODIES_FILE")) do bodies[#bodies + 1] = line end
local path = os.getenv("WRK_PATH")
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("API_KEY"),
}
local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

function init(args)
  index = offset * 37 % #bodies
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", path, headers, bodies[index])
end

function response(status, headers, body)
  if status ~= 200 then
    error("status " .. status)
  end
end
