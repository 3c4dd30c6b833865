-- A provider that drives a command-line tool through vmpool.exec (no
-- shell). The tool answers these verbs, after the words of `command`:
--   list <pool>                       VM names, one per line
--   show <pool> <vm>                  key=value lines (hostname, ip, host, powerstate,
--                                     boottime as epoch seconds); exit 3: no such VM
--   create <pool> <vm> <template>     make and start the VM
--   destroy <pool> <vm>               exit 0 also when it is gone already
--   ready <pool> <vm>                 exit 0: ready, 1: not yet
--
--   :config:    { lua: [lua/vmpool/examples/command_provider.lua] }
--   :providers: { mycloud: { provider_class: command, command: [/usr/local/bin/mycloud, --ci],
--                            command_timeout: 600 } }
local C = vmpool.provider("command", {})

function C:open()
  local cmd = self.config.command
  if type(cmd) == "string" then cmd = { cmd } end
  if type(cmd) ~= "table" or #cmd == 0 then
    error(self.name .. ": `command` must name the tool (a path, or a list: path and arguments)")
  end
  self.argv = { table.unpack(cmd) }
  self.timeout = tonumber(self.config.command_timeout) or 300
end

-- Runs the tool with words; raises with its stderr unless the exit status is in ok.
local function run(self, words, ok)
  local argv = { table.unpack(self.argv) }
  table.move(words, 1, #words, #argv + 1, argv)
  local r, err = vmpool.exec(argv, { timeout = self.timeout })
  if not r then error(err, 2) end
  if r.timed_out then
    error(("%s %s: no answer after %g s"):format(argv[1], words[1], self.timeout), 2)
  end
  if not (ok or { [0] = true })[r.status] then
    local why = r.stderr:gsub("%s+$", "")
    error(("%s %s failed (%s): %s"):format(argv[1], words[1],
      r.status and "exit " .. r.status or "signal " .. r.signal, why), 2)
  end
  return r
end

function C:vms_in_pool(pool)
  local names = {}
  for line in run(self, { "list", pool }).stdout:gmatch("[^\n]+") do names[#names + 1] = line end
  return names
end

function C:get_vm(pool, vm)
  local r = run(self, { "show", pool, vm }, { [0] = true, [3] = true })
  if r.status == 3 then return nil end
  local info = { name = vm, template = pool, poolname = pool }
  for k, v in r.stdout:gmatch("([%w_]+)=([^\n]*)") do info[k] = v end
  info.boottime = tonumber(info.boottime)
  return info
end

function C:create_vm(pool, vm)
  local pc = self:pool_config(pool)
  run(self, { "create", pool, vm, pc and pc.template or pool })
  return self:get_vm(pool, vm)
end

function C:destroy_vm(pool, vm) run(self, { "destroy", pool, vm }) end

function C:vm_ready(pool, vm)
  return run(self, { "ready", pool, vm }, { [0] = true, [1] = true }).status == 0
end

function C:get_vm_ip_address(pool, vm)
  local info = self:get_vm(pool, vm)
  return info and info.ip
end
