// Package testutil holds the helpers every VeloFlux test package shares, so that waiting,
// log capture, address picking and fake time work one way everywhere and hold up on a busy
// machine: Eventually and Receive wait for an event under one generous, scalable guard
// (Timeout) instead of a short fixed deadline, and Counting waits for many events, failing only
// when one of them is a guard late; LogBuffer is a locked sink for slog handlers
// whose records tests find by message; FreeAddr and FreePorts pick loopback ports for what
// cannot listen on port 0 itself; Clock is a settable time source for code that takes a
// now function.
//
// Code driven by timers is better tested inside a testing/synctest bubble, where these
// helpers also work: their sleeps and the guard run on the bubble's fake clock. Transport
// brings an HTTP client into such a bubble by serving its requests in memory.
//
// Its subpackage testconfig writes configuration files from Go values.
//
// Only tests import this package.
package testutil
