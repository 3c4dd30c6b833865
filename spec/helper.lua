-- Loaded before every spec file (see .busted).
--
-- Specs of the pure Lua modules run under plain Lua with the lua/ directory
-- on package.path. Specs of the Lua API go through the real C module,
-- vmpool/core.so in the build directory named by VMP_BUILD_DIR (set by
-- scripts/test.sh); without it they are marked pending, never passed.
local build = os.getenv("VMP_BUILD_DIR")
if build and build ~= "" then
  package.cpath = build .. "/lua/?.so;" .. package.cpath
end

local H = {}

--- The vmpool.core module, or nil and the reason it is missing.
function H.core()
  if not build or build == "" then
    return nil, "VMP_BUILD_DIR is not set (run scripts/test.sh)"
  end
  local ok, core = pcall(require, "vmpool.core")
  if not ok then
    return nil, "vmpool.core not loadable from " .. build .. "/lua: " .. tostring(core)
  end
  return core
end

--- A new temporary directory (removed by H.rmdir).
function H.tmpdir()
  local p = io.popen("mktemp -d /tmp/vmp-spec-XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

function H.rmdir(dir)
  if dir and dir:match("^/tmp/vmp%-spec%-") then
    os.execute("rm -rf '" .. dir .. "'")
  end
end

function H.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- Source directory of the checkout (the directory busted runs in).
H.root = os.getenv("PWD") or "."

package.loaded["spec.helper"] = H
_G.vmp_spec = H
return H
