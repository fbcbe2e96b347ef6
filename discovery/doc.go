// Package discovery describes where backends come from. A Source publishes immutable
// Snapshots of pools and routes; the static YAML config is one source, Consul (issue 3) will be
// another. The proxy turns the merged Snapshot into its routing table.
package discovery
