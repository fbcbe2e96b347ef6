package main

import (
	"runtime"
	"strings"
)

// minProcs is the fewest processors (GOMAXPROCS) a node runs Go code on when the GOMAXPROCS
// variable does not say otherwise, however few CPUs it may use. With one, a system call that
// the runtime's monitor sees running across two of its ticks (20 us apart) loses the
// processor, handed to another thread, and the monitor keeps ticking every 20 us while that
// goes on: on a proxy that makes four system calls per request, about a tenth of its CPU
// time. With two, the monitor leaves a processor in a system call alone while the other is
// idle, and backs off; on one CPU (taskset) the proxy took 5-10% less CPU per request in
// paired runs, with half the context switches.
const minProcs = 2

// procsFor is the GOMAXPROCS to set, or 0 to leave the runtime's choice (current) alone.
func procsFor(environ []string, current int) int {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return 0 // the operator's choice
		}
	}
	if current < minProcs {
		return minProcs
	}
	return 0
}

// raiseProcs applies procsFor. Setting GOMAXPROCS ends the runtime's own updates of it from
// the CPU limit, so it is set only when raised.
func raiseProcs(environ []string) {
	if n := procsFor(environ, runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}
