// Package config turns a YAML file plus VFX_* environment variables into a validated Config.
//
// Each package's Config is the one definition of its settings: its koanf tags name the keys,
// its DefaultConfig gives the defaults and its Validate states the rules, with paths relative
// to its section (discovery/consul for discovery.consul, gossip and health/consensus for
// cluster). This package composes them into the file's schema and adds what only the whole
// file knows: decoding, environment overrides, inheritance (pools from global), rules that tie
// sections together, and the order problems are listed in. It is the only package that imports
// koanf; the file is parsed once. Load and Parse are strict: unknown keys, wrong types and
// invalid values are all reported together, each with its key path
// ("pools[1].backends[0].address: missing port"), so one run of `veloflux validate` shows every
// problem. The user-facing reference is docs/configuration.md.
package config
