// Package admin serves the operator's HTTP API: read the node's status, pools, routes and
// effective config, and drain or undrain the node.
//
// The package knows nothing about the proxy or the config format. It drives a Controller,
// which admin/views implements over the node's real parts (cmd wires them), and it owns only
// what makes the API safe to expose: basic auth compared in constant time, a per-client-IP
// lockout with exponential backoff, cross-origin protection for the state-changing
// endpoints, and a refusal to run without credentials anywhere but on a loopback address.
package admin
