// Package ratelimit decides whether a client IP may send another request right now.
//
// Each client has a token bucket kept as one GCRA "theoretical arrival time" (an int64), so a
// tracked client costs 32 bytes including the hash table's spare slots. IPv4 clients are keyed
// per address (an IPv4-mapped IPv6 address counts as the IPv4 address); IPv6 clients share a
// bucket per network prefix (/64 by default), because one host usually owns a whole /64 and
// could otherwise rotate addresses to get a fresh bucket per request.
//
// Memory is bounded by Config.MaxClients and allocated once in New. When the table is full, a
// new client evicts the tracked client whose bucket is closest to full: forgetting it loses
// the least information, and the forgotten client only ever comes back with a full bucket, so
// eviction can make the limiter more lenient but never stricter. A flood of spoofed or
// rotating addresses therefore mostly evicts its own entries, not the buckets of the clients
// it is meant to shield.
//
// The limiter has no goroutines and no clock of its own: callers pass the time, which keeps
// tests free of sleeps and lets the proxy read the clock once per request.
package ratelimit
