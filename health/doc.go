// Package health decides which backends may receive traffic by actively probing them over
// HTTP. A Checker probes each Target on its own jittered schedule, flips a backend down after
// Fall consecutive failures and up again after Rise consecutive successes, and publishes the
// result as an immutable snapshot that the proxy reads lock-free through Healthy. A Target may
// override the interval, timeout and fall of the Checker's Config, as a pool's own
// health_check settings do.
//
// The package knows nothing about the proxy: the proxy declares the one-method view it needs
// (Healthy(backendID string) bool) and cmd hands it a *Checker.
package health
