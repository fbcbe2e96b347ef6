// Package statusset parses and matches the expect_status syntax of active health checks: HTTP
// status codes and ranges such as "200-399", "200" or "200-299,301". It has no dependencies,
// so the config loader and the Consul tag parser validate with the same rules the checker
// applies.
package statusset
