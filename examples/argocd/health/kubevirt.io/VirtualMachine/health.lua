-- Argo CD health for kubevirt.io/VirtualMachine that knows run strategies.
-- Installed as resource.customizations.health.kubevirt.io_VirtualMachine (see
-- examples/argocd/argocd-cm.yaml). Lua 5.1 for gopher-lua, using only what Argo CD gives
-- argocd-cm scripts: base functions, table, a safe os. No string or math library, so no
-- string methods (s:sub) either.
--
-- Healthy      Running with Ready=True; Stopped when the run strategy wants it stopped
--              (Halted, Manual, Once after its run; `running: false`) - argo-cd#29663
-- Degraded     printableStatus errors (CrashLoopBackOff, ErrImagePull, Error*, ...);
--              Stopped under RerunOnFailure (KubeVirt will not start it again)
-- Suspended    Paused (condition or printableStatus)
-- Progressing  everything KubeVirt moves on from by itself, and anything not recognised

-- printableStatus values that say the VM cannot run as asked.
local FAILED = {
  CrashLoopBackOff = true,
  ErrorUnschedulable = true,
  ErrImagePull = true,
  ImagePullBackOff = true,
  ErrorPvcNotFound = true,
  ErrorDataVolumeNotFound = true,
  DataVolumeError = true,
}

-- On the way somewhere: KubeVirt moves on by itself. "Unknown" means KubeVirt lost
-- track of the instance (node unreachable); it is not an error of the VM yet.
local TRANSIENT = {
  Provisioning = true,
  Starting = true,
  Migrating = true,
  Stopping = true,
  Terminating = true,
  WaitingForVolumeBinding = true,
  WaitingForReceiver = true,
  Unknown = true,
}

-- Run strategies for which Stopped is the goal (Once: printableStatus is Starting until
-- its single run has happened, so Stopped means the run is over).
local STOPPED_ON_PURPOSE = { Halted = true, Manual = true, Once = true }

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

-- Any other Error* value is an error too. Without the string library a prefix test is a
-- byte-order range: every string starting with "Error" lies in ["Error", "Erros").
local function isError(printable)
  return FAILED[printable] == true or (printable >= "Error" and printable < "Erros")
end

-- The condition KubeVirt uses to say why (the VM's own Failure, or the instance's
-- Synchronized / PodScheduled, copied onto the VM).
local function failureDetail(status)
  local c = condition(status, "Failure")
  if isTrue(c) and type(c.message) == "string" then
    return c.message
  end
  for _, kind in ipairs({ "Synchronized", "PodScheduled" }) do
    c = condition(status, kind)
    if c ~= nil and c.status == "False" and type(c.message) == "string" then
      return c.message
    end
  end
  return nil
end

-- KubeVirt's rule: runStrategy if set, else `running: true` is Always, else Halted.
local function runStrategy(spec)
  if type(spec) ~= "table" then
    return "Halted"
  end
  if spec.runStrategy ~= nil then
    return spec.runStrategy
  end
  if spec.running == true then
    return "Always"
  end
  return "Halted"
end

local function stopped(strategy)
  if STOPPED_ON_PURPOSE[strategy] then
    return "Healthy", "Stopped"
  end
  if strategy == "Always" then
    -- KubeVirt starts a new instance at once; a start that keeps failing shows up as
    -- CrashLoopBackOff (Degraded).
    return "Progressing", "Stopped; runStrategy Always starts it again"
  end
  if strategy == "RerunOnFailure" then
    -- The instance finished. KubeVirt restarts it only after a failure: a guest that shut
    -- itself down stays off until someone starts it, so waiting would never end.
    return "Degraded", "Stopped; runStrategy RerunOnFailure does not restart a guest that shut itself down"
  end
  if strategy == "WaitAsReceiver" then
    -- A migration target: KubeVirt starts it when the source side hands over.
    return "Progressing", "Stopped; runStrategy WaitAsReceiver waits for an incoming migration"
  end
  return "Progressing", "Stopped; runStrategy " .. tostring(strategy) .. " not recognised"
end

local function health(obj)
  local status = obj.status
  if type(status) ~= "table" or type(status.printableStatus) ~= "string"
      or status.printableStatus == "" then
    return "Progressing", "No status available"
  end
  local printable = status.printableStatus
  if printable == "Paused" or isTrue(condition(status, "Paused")) then
    return "Suspended", "Paused"
  end
  if isError(printable) then
    local detail = failureDetail(status)
    if detail ~= nil then
      return "Degraded", printable .. ": " .. detail
    end
    return "Degraded", printable
  end
  if TRANSIENT[printable] then
    return "Progressing", printable
  end
  if printable == "Running" then
    if not isTrue(condition(status, "Ready")) then
      return "Progressing", "Running; guest not ready"
    end
    if isTrue(condition(status, "RestartRequired")) then
      return "Healthy", "Running; restart required to apply template changes"
    end
    return "Healthy", "Running"
  end
  if printable == "Stopped" then
    return stopped(runStrategy(obj.spec))
  end
  -- A printableStatus newer than this script: wait rather than claim health or failure.
  return "Progressing", printable .. ": printableStatus not recognised"
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
