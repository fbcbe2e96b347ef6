// Package localerr tells failures this process or host caused apart from failures of the
// peer: a dial that found no free file descriptor, socket buffer, memory or local port says
// nothing about the backend it was meant for. Health checks and the proxy's passive checks
// use it so that a node running out of resources does not mark healthy backends down.
package localerr
