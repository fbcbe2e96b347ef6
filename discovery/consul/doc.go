// Package consul is VeloFlux's Consul discovery source. It watches the catalog with blocking
// queries (the list of services, then each service's healthy instances, in the local and any
// extra datacenters), reads routing from service tags and meta, and publishes
// discovery.Snapshots. On any Consul error it keeps the last good snapshot and backs off.
// It can also register VeloFlux itself as a Consul service.
package consul
