// Package discovery describes where backends come from: immutable Snapshots of pools and
// routes, from the static YAML config and from the Consul catalog (discovery/consul), merged
// in priority order (Merge). The proxy turns the merged Snapshot into its routing table.
package discovery
