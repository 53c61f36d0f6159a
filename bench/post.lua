-- wrk script: POST with a body of N bytes, N given after "--" on wrk's command line
-- (wrk ... -s bench/post.lua URL -- 1024). wrk never sends Expect: 100-continue.
function init(args)
   local n = tonumber(args[1] or "1024")
   wrk.method = "POST"
   wrk.body = string.rep("a", n)
   wrk.headers["Content-Type"] = "application/octet-stream"
end
