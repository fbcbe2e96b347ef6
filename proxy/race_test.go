//go:build race

package proxy

// raceEnabled: the race detector's instrumentation allocates, so allocation budgets are
// checked only without it.
const raceEnabled = true
