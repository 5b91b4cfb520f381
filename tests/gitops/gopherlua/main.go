// Runs Argo CD health scripts under gopher-lua the way Argo CD runs scripts from argocd-cm
// (argo-cd util/lua/lua.go, useOpenLibs off): no standard libraries but package, base,
// table and a safe os (time and date only), the object as global `obj`.
//
// Input on stdin: a JSON list of {"script": ..., "obj": {...}}. Output on stdout: a JSON
// list of {"status": ..., "message": ...} or {"error": ...}, in the same order.
// Built by tests/gitops/test_gopher_lua.py against Debian's gopher-lua source package.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

type job struct {
	Script string                 `json:"script"`
	Obj    map[string]interface{} `json:"obj"`
}

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// As Argo CD's decodeValue: JSON values to Lua values, null to nil.
func decodeValue(L *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := L.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(L, item))
		}
		return arr
	case map[string]interface{}:
		tbl := L.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(L, item))
		}
		return tbl
	}
	return lua.LNil
}

func openLibs(L *lua.LState) {
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, lua.OpenOs},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	// Argo CD's OpenSafeOs keeps the time functions only.
	full := L.GetGlobal("os").(*lua.LTable)
	safe := L.NewTable()
	for _, name := range []string{"clock", "date", "difftime", "time"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	L.SetGlobal("os", safe)
}

func run(j job) result {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	openLibs(L)
	L.SetGlobal("obj", decodeValue(L, j.Obj))
	if err := L.DoString(j.Script); err != nil {
		return result{Error: err.Error()}
	}
	tbl, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return result{Error: fmt.Sprintf("expect table output from Lua script, not %s", L.Get(-1).Type())}
	}
	return result{Status: tbl.RawGetString("status").String(),
		Message: tbl.RawGetString("message").String()}
}

func main() {
	var jobs []job
	if err := json.NewDecoder(os.Stdin).Decode(&jobs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	results := make([]result, 0, len(jobs))
	for _, j := range jobs {
		results = append(results, run(j))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
