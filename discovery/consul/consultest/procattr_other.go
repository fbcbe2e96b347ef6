//go:build !linux

package consultest

import "os/exec"

// dieWithParent does nothing: only Linux kills a child when its parent dies (Pdeathsig), so
// elsewhere an agent outlives a test binary that dies without running its cleanups.
func dieWithParent(*exec.Cmd) {}
