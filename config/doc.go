// Package config turns a YAML file plus VFX_* environment variables into a validated Config.
//
// It is the only package that knows the file format: everything else receives typed values
// (durations, netip.Prefix) and never sees YAML or koanf. Load and Parse are strict: unknown keys,
// wrong types and invalid values are all reported together, each with its key path
// ("pools[1].backends[0].address: missing port"), so one run of `veloflux validate` shows every
// problem. The user-facing reference is docs/configuration.md.
package config
