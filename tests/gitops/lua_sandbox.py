"""Run an Argo CD health script the way Argo CD runs one from `argocd-cm`, as far as an
embedded Lua 5.1 (lupa) allows: the object as global `obj`, the script's return value as
`{status, message}`, and only the libraries Argo opens for such scripts (useOpenLibs off,
argo-cd `util/lua/lua.go`): base functions, `table` and a safe `os` — no `string`, no
`math`. gopher-lua without its string library also has no string methods (`s:sub()`), so
the string metatable's `__index` is removed here too.

Differences from Argo CD, all on the strict side: `load`, `loadstring`, `dofile`,
`loadfile`, `getfenv`, `setfenv`, `require` and `module` are hidden (a health script needs
none of them, and `getfenv(0)` would reach the unrestricted globals of this runtime).
Not gopher-lua: a script that passes here can still hit a gopher-lua difference; Argo's own
Go test (`argocd admin settings resource-overrides health`) is the final word.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import lupa.lua51 as lua51

# gopher-lua's base library, minus the functions named in the module docstring.
BASE_FUNCTIONS = (
    "assert", "collectgarbage", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
    "print", "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber",
    "tostring", "type", "unpack", "xpcall", "_VERSION",
)
# Argo CD's OpenSafeOs: time and date functions, nothing that touches the process.
SAFE_OS = ("clock", "date", "difftime", "time")

_RUNNER = """
local base, safe_os, table_lib = ...
local function sandbox(obj)
  local env = {}
  for _, name in ipairs(base) do env[name] = _G[name] end
  env.table = {}
  for k, v in pairs(table_lib) do env.table[k] = v end
  env.os = {}
  for _, name in ipairs(safe_os) do env.os[name] = os[name] end
  env._G = env
  env.obj = obj
  return env
end
return function(source, obj)
  local chunk, err = loadstring(source, "=health.lua")
  if chunk == nil then error(err, 0) end
  setfenv(chunk, sandbox(obj))
  return chunk()
end
"""


class ArgoHealth(enum.Enum):
    """gitops-engine's health codes that a Lua script may return."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class HealthStatus:
    status: ArgoHealth
    message: str


class LuaHealthError(Exception):
    """The script failed to run (Argo CD shows this as an error, not as a health)."""


class Sandbox:
    """One Lua 5.1 state with the restricted environment; one health script per call."""

    def __init__(self) -> None:
        self._lua = lua51.LuaRuntime(unpack_returned_tuples=True)
        g = self._lua.globals()
        # gopher-lua without OpenString: indexing a string is an error.
        self._lua.execute('getmetatable("").__index = nil')
        self._run = self._lua.execute(
            _RUNNER, self._lua.table_from(BASE_FUNCTIONS),
            self._lua.table_from(SAFE_OS), g.table)

    def run(self, source: str, obj: Any) -> HealthStatus:
        lua_obj = self._lua.table_from(obj, recursive=True) if isinstance(obj, dict) else obj
        try:
            result = self._run(source, lua_obj)
        except lua51.LuaError as exc:
            raise LuaHealthError(str(exc)) from None
        if lua51.lua_type(result) != "table":
            raise LuaHealthError(f"expect table output from Lua script, not {result!r}")
        status, message = result["status"], result["message"]
        try:
            code = ArgoHealth(status)
        except ValueError:
            # What Argo CD does with a code it does not know.
            return HealthStatus(ArgoHealth.UNKNOWN, "Lua returned an invalid health status")
        return HealthStatus(code, "" if message is None else str(message))
