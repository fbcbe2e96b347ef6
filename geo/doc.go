// Package geo will locate clients with a MaxMind GeoIP database and order regions by
// great-circle distance, so the proxy can send each client to the nearest healthy region
// (issue 6). The proxy consumes it through a small Locator interface that cmd wires in.
package geo
