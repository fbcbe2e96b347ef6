// Package integration drives the real veloflux binary: it builds it, starts it with real
// configuration files against real backends on loopback, and sends it real signals. Its
// tests carry the "integration" build tag and run with `make integration`.
package integration
