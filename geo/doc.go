// Package geo places clients on the map with a MaxMind GeoIP2/GeoLite2 database and orders
// regions by great-circle distance from them, so the proxy can send each client to the
// nearest region with healthy backends and fail over to the next nearest.
//
// A Locator answers from memory: Order(ip) returns every known region (the built-in cloud
// regions of BuiltinRegions plus Config.Regions), nearest first, as a slice shared by all
// clients of one location, and a cached answer costs no allocation. Country and continent
// overrides put a chosen region first. Locator.Run follows the database file and swaps in a
// new release after checking it, without dropping lookups in flight.
//
// The proxy consumes a Locator through its own small interface (proxy.Locator); cmd wires
// the concrete type in. How geo routing works end to end is in docs/geo-routing.md.
package geo
