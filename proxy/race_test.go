//go:build race

package proxy

// raceEnabled: the race detector allocates on its own and makes sync.Pool drop items at
// random, so allocation counts mean nothing under it (make unit counts them in a run without).
const raceEnabled = true
