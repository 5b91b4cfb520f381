-- Argo CD health for kubevirt.io/VirtualMachineInstance.
-- Installed as resource.customizations.health.kubevirt.io_VirtualMachineInstance (see
-- examples/argocd/argocd-cm.yaml). Lua 5.1 for gopher-lua, using only base functions and
-- table (Argo CD gives argocd-cm scripts no string or math library).
--
-- Healthy      Running with Ready=True; Succeeded (the guest ran and shut down: done,
--              like a VirtualMachine with runStrategy Once)
-- Degraded     Failed
-- Suspended    Running and paused
-- Progressing  Pending, Scheduling, Scheduled, migrating, Running but not ready yet,
--              Unknown (KubeVirt lost track of the node) and anything not recognised

local function condition(status, kind)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- KubeVirt's own test (migrations.IsMigrating): started and not ended.
local function migrating(status)
  local m = status.migrationState
  return type(m) == "table" and m.startTimestamp ~= nil and m.endTimestamp == nil
end

local STARTING = { Pending = true, Scheduling = true, Scheduled = true }

local function running(status)
  local paused = condition(status, "Paused")
  if isTrue(paused) then
    if type(paused.message) == "string" then
      return "Suspended", paused.message
    end
    return "Suspended", "Paused"
  end
  if migrating(status) then
    return "Progressing", "Migrating"
  end
  if isTrue(condition(status, "Ready")) then
    return "Healthy", "Running"
  end
  return "Progressing", "Running; guest not ready"
end

local function health(obj)
  local status = obj.status
  if type(status) ~= "table" or type(status.phase) ~= "string" or status.phase == "" then
    return "Progressing", "No status available"
  end
  local phase = status.phase
  if phase == "Failed" then
    if type(status.reason) == "string" then
      return "Degraded", "Failed: " .. status.reason
    end
    return "Degraded", "Failed"
  end
  if phase == "Succeeded" then
    return "Healthy", "Succeeded"
  end
  if STARTING[phase] then
    return "Progressing", phase
  end
  if phase == "Running" then
    return running(status)
  end
  return "Progressing", phase
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
