// Package views is what the admin API shows of a running node. Its Controller implements
// admin.Controller over the node's concrete parts (the proxy and its server, the active and
// passive health checks and their consensus, the backend drains, the Consul source and the
// gossip cluster) and builds the JSON documents of /admin/status, /admin/pools,
// /admin/health, /admin/routes, /admin/config, /admin/stats (from the node's own metrics) and
// /admin/sessions, which docs/operations.md describes; it also tells the admin API where a
// peer is, for the forward under /admin/peers/.
//
// It is a package of its own rather than part of admin because the two have different jobs
// and different imports: admin serves the API (routing, basic auth, lockout, cross-origin
// checks) and knows nothing of the proxy or the config format, so it is tested and secured
// with a fake Controller; these views import nearly every package of the node. Nor do they
// stay in cmd, which only wires: the documents are an interface operators script against,
// with field names to keep, and they get tests of their own here.
//
// A Controller only reads the parts it is given and never replaces them: cmd builds every
// part before the admin listener serves and hands them over in Parts, so a request that
// arrives while the node is still starting sees the whole node, never a half-built one.
package views
