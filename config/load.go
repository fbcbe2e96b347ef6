package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"

	kmaps "github.com/knadh/koanf/maps"
	env "github.com/knadh/koanf/providers/env/v2"
	"go.yaml.in/yaml/v3"

	"github.com/veloflux/veloflux/internal/pace"
)

const (
	envPrefix    = "VFX_"
	envConfigVar = "VFX_CONFIG"
	// envNestSep separates nesting levels in variable names; a single "_" is part of key
	// names such as rate_limit, so it cannot be the separator.
	envNestSep = "__"
)

// envAlias maps the short variables kept for convenience to their keys. They are applied after
// the generic VFX_SECTION__KEY variables, so they win when both are set.
func envAlias(name string) (string, bool) {
	switch name {
	case "VFX_LOG_LEVEL":
		return "global.log_level", true
	case "VFX_STICKY_SECRET":
		return "sticky.secret", true
	case "VFX_CONSUL_TOKEN":
		return "discovery.consul.token", true
	case "VFX_GOSSIP_KEY":
		return "cluster.gossip_key", true
	}
	return "", false
}

// MaxFileBytes is the largest config file Load reads: 4 MiB. Decoding costs about 100 times
// the file's size in memory (5,000 pools of three backends with a route each make 1.3 MB and
// allocate 133 MB in half a second; a 50 MB file took 3.1 GB and 70 s), so the cap keeps a
// reload, which runs while the node serves, to a few hundred megabytes and a couple of seconds
// at most, while real configurations stay far below it. A larger file is almost certainly a
// mistake (a log or a binary at the config path); large fleets belong in service discovery.
const MaxFileBytes = 4 << 20

// ErrFileTooLarge is wrapped by Load's error for a file over MaxFileBytes.
var ErrFileTooLarge = errors.New("config file too large")

// Load reads the YAML file at path, applies the VFX_* variables in environ (os.Environ form)
// and validates the result. Invalid content yields an error wrapping Errors; use errors.As to
// list every problem. A file over MaxFileBytes is refused with ErrFileTooLarge, having read
// at most MaxFileBytes+1 bytes of it.
func Load(path string, environ []string) (*Config, error) { return LoadPaced(path, environ, nil) }

// LoadPaced is Load stepping aside with p every slice of its work (reading the YAML,
// decoding and validating), for a reload that runs while the node serves; nil p never steps
// aside.
func LoadPaced(path string, environ []string, p *pace.Pacer) (*Config, error) {
	b, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config file %s does not exist (set VFX_CONFIG to use another path): %w", path, err)
	}
	if errors.Is(err, ErrFileTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := parse(b, environ, p)
	var errs Errors
	if errors.As(err, &errs) {
		return nil, fmt.Errorf("config file %s has %d problem(s):\n%w", path, len(errs), err)
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// readFile reads the file at path, refusing one over MaxFileBytes: a regular file by its size,
// before reading; anything else (a pipe, a file growing while it is read) by reading no more
// than MaxFileBytes+1 bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("config file %s is %d bytes, over the cap of %d (4 MiB): %w", path, fi.Size(), MaxFileBytes, ErrFileTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("config file %s is more than %d bytes, over the cap of %d (4 MiB): %w", path, MaxFileBytes, MaxFileBytes, ErrFileTooLarge)
	}
	return b, nil
}

// Parse is Load without the file: yamlBytes is the file's content (empty means all defaults).
// Unknown keys, wrong types and invalid values are returned together as Errors; a YAML syntax
// error is returned alone because nothing after it can be trusted.
func Parse(yamlBytes []byte, environ []string) (*Config, error) {
	return parse(yamlBytes, environ, nil)
}

func parse(yamlBytes []byte, environ []string, p *pace.Pacer) (*Config, error) {
	doc, err := parseYAML(yamlBytes, p)
	if err != nil {
		return nil, err
	}
	cfg := Default()
	root := reflect.ValueOf(cfg).Elem()
	d := newDecoder()
	d.pace = p
	if doc != nil {
		if _, ok := asMap(doc); ok {
			d.decode("", doc, root)
		} else {
			d.fail("", nil, "the file must be a mapping of sections such as global: and pools:, got %s", describe(doc))
		}
	}
	if err := d.applyEnv(root, environ); err != nil {
		return nil, err
	}
	if err := d.applyConsulEnv(root, environ); err != nil {
		return nil, err
	}
	inheritHealthCheck(cfg, d.explicit)
	normalize(cfg)

	errs := d.errs
	rules := missingCoordinates(cfg, d.explicit)
	if verr := cfg.validate(p); verr != nil {
		rules = append(rules, verr.(Errors)...)
	}
	for _, fe := range rules {
		// A value that failed to decode kept its default; its validation errors would
		// only repeat the decode error in a more confusing way.
		if !slices.ContainsFunc(d.errs, func(de FieldError) bool { return under(fe.Path, de.Path) }) {
			errs = append(errs, fe)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return cfg, nil
}

// parseYAML decodes the single document in b, the only parse of the file; nil means an empty
// file. A document that blockTree takes is its value; any other goes through yaml.v3's parser,
// whose node tree is turned into the document's value by simpleTree when it can, else by
// yaml.v3's decoder. A second document is an error instead of being ignored, since a config silently
// missing half its pools is worse than one that does not load.
func parseYAML(b []byte, p *pace.Pacer) (any, error) {
	if doc, ok := blockTree(b, p); ok {
		return doc, nil // one document, every mapping's keys strings
	}
	var r io.Reader = bytes.NewReader(b)
	if p != nil {
		r = &pacedReader{r: r, pace: p}
	}
	dec := yaml.NewDecoder(r)
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	doc, simple := simpleTree(&root, p)
	if !simple {
		doc = nil
		if err := root.Decode(&doc); err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
	}
	for {
		var extra any
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			if simple {
				return doc, nil // every mapping's keys are strings already
			}
			return loadMapping(doc)
		}
		if err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
		if extra != nil {
			return nil, errors.New("parse YAML: the file has more than one YAML document (a second one starts at a \"---\" line); put everything in one")
		}
	}
}

// pacedReader steps aside before each read: the YAML parser reads its input in pieces of
// 512 bytes as it goes, so this paces the parse.
type pacedReader struct {
	r    io.Reader
	pace *pace.Pacer
}

func (r *pacedReader) Read(b []byte) (int, error) {
	r.pace.Step()
	return r.r.Read(b)
}

// loadMapping returns the tree of a document that is a mapping with every nested mapping's
// keys as strings, as koanf's file layer has them; any other document is returned as it is,
// for the decoder to reject with its path. It converts in place: loading the tree into a koanf
// instance and reading it back (confmap.Provider, Load, Raw) would copy it three times over,
// which for a file of 10,000 backends was most of a reload's time, and with a delimiter that no
// key contains (as it was) the tree would come back as it went in.
func loadMapping(doc any) (any, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return doc, nil
	}
	kmaps.IntfaceKeysToStrings(m)
	return m, nil
}

// applyEnv applies the VFX_* variables: the generic VFX_SECTION__KEY layer, then the aliases,
// which therefore win. koanf's env provider turns each variable name into its key path; the
// value keeps the variable's name, so that a problem names the variable to fix.
func (d *decoder) applyEnv(root reflect.Value, environ []string) error {
	for _, aliases := range []bool{false, true} {
		vars, err := env.Provider("", env.Opt{
			Prefix:      envPrefix,
			EnvironFunc: func() []string { return environ },
			TransformFunc: func(name, value string) (string, any) {
				key, isAlias := envAlias(name)
				switch {
				case name == envConfigVar || isAlias != aliases:
					return "", nil // not this layer's
				case !isAlias:
					key = strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), envNestSep, "."))
				}
				if key == "" {
					// VFX_ alone names no key; kept under its name so that it is reported.
					return name, envValue{Var: name, Value: value}
				}
				return key, envValue{Var: name, Value: value, key: key}
			},
		}).Read()
		if err != nil {
			return fmt.Errorf("read environment: %w", err)
		}
		for _, key := range slices.Sorted(maps.Keys(vars)) {
			ev := vars[key].(envValue)
			d.applyEnvVar(root, ev.Var, ev.key, ev.Value)
		}
	}
	return nil
}

// consulVars are the standard Consul client variables and the discovery.consul keys they
// stand for.
var consulVars = map[string]string{
	"CONSUL_HTTP_ADDR":       "discovery.consul.address",
	"CONSUL_HTTP_SSL":        "discovery.consul.scheme",
	"CONSUL_HTTP_TOKEN":      "discovery.consul.token",
	"CONSUL_HTTP_TOKEN_FILE": "discovery.consul.token_file",
	"CONSUL_CACERT":          "discovery.consul.tls.ca_file",
	"CONSUL_CLIENT_CERT":     "discovery.consul.tls.cert_file",
	"CONSUL_CLIENT_KEY":      "discovery.consul.tls.key_file",
	"CONSUL_TLS_SERVER_NAME": "discovery.consul.tls.server_name",
	"CONSUL_HTTP_SSL_VERIFY": "discovery.consul.tls.insecure_skip_verify",
}

// applyConsulEnv applies the standard Consul client variables, the lowest layer above the
// defaults: each sets its key only when neither the file nor a VFX_ variable wrote it, so
// that a node configured for one agent is not moved by a variable meant for the Consul
// command line. CONSUL_HTTP_ADDR may start with http:// or https://, which then also sets the
// scheme; CONSUL_HTTP_SSL=true (or 1) sets scheme https; CONSUL_HTTP_SSL_VERIFY=false (or 0)
// sets tls.insecure_skip_verify; the two token variables apply only when the file and VFX_
// set neither token nor token_file, which exclude each other.
func (d *decoder) applyConsulEnv(root reflect.Value, environ []string) error {
	vars, err := env.Provider("", env.Opt{
		Prefix:      "CONSUL_",
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			key, ok := consulVars[name]
			if !ok || value == "" {
				return "", nil
			}
			return key, envValue{Var: name, Value: value, key: key}
		},
	}).Read()
	if err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	const prefix = "discovery.consul."
	written := func(key string) bool { return d.explicit[prefix+key] }
	tokenWritten := written("token") || written("token_file")
	set := func(key, name, value string) {
		if !written(key) {
			d.applyEnvVar(root, name, prefix+key, value)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(vars)) {
		ev := vars[key].(envValue)
		switch short := strings.TrimPrefix(key, prefix); short {
		case "address":
			v := ev.Value
			if rest, ok := strings.CutPrefix(v, "https://"); ok {
				v = rest
				set("scheme", ev.Var, "https")
			} else {
				v = strings.TrimPrefix(v, "http://")
			}
			set("address", ev.Var, v)
		case "scheme":
			if ev.Value == "true" || ev.Value == "1" {
				set("scheme", ev.Var, "https")
			}
		case "tls.insecure_skip_verify":
			if ev.Value == "false" || ev.Value == "0" {
				set(short, ev.Var, "true")
			}
		case "token", "token_file":
			if !tokenWritten {
				d.applyEnvVar(root, ev.Var, key, ev.Value)
			}
		default:
			set(short, ev.Var, ev.Value)
		}
	}
	return nil
}

// applyEnvVar sets the key named by one variable. Only scalar keys and lists of scalars can be
// set: pools, routes, rules and geo.regions are lists of sections with no stable way to
// address an entry, and mappings are refused too.
func (d *decoder) applyEnvVar(root reflect.Value, name, key, value string) {
	v, path := root, ""
	for seg := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct || v.Type() == reflect.TypeFor[netip.Prefix]() {
			d.fail(name, nil, "unknown key %q", key)
			return
		}
		f, _, ok := lookupKey(v.Type(), seg)
		if !ok {
			d.fail(name, nil, "unknown key %q", key)
			return
		}
		v, path = v.FieldByIndex(f.index), keyPath(path, seg)
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() != reflect.TypeFor[netip.Prefix]() {
			d.fail(name, nil, "%s is a list of sections, which cannot be set from the environment", path)
			return
		}
		if v.Kind() == reflect.Map {
			// Variable names are lower-cased, which would garble keys such as country codes.
			d.fail(name, nil, "%s is a mapping, which cannot be set from the environment; write it in the file", path)
			return
		}
	}
	if v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[netip.Prefix]() {
		d.fail(name, nil, "%s is a section, not a key; set one of its keys, e.g. %s%s<KEY>", path, name, envNestSep)
		return
	}
	d.decode(path, envValue{Var: name, Value: value}, v)
}

// inheritHealthCheck fills each pool's health check and passive fields that the pool did not
// set from global.health_check and global.passive, and its max_conns_per_backend, unless
// written and not 0, from global.limits. It runs after every layer so an environment override
// of the global value reaches the pools too.
func inheritHealthCheck(cfg *Config, explicit map[string]bool) {
	g, gp := cfg.Global.HealthCheck, cfg.Global.Passive
	for i := range cfg.Pools {
		if cfg.Pools[i].MaxConnsPerBackend == 0 {
			cfg.Pools[i].MaxConnsPerBackend = cfg.Global.Limits.MaxConnsPerBackend
		}
		hc, ps := &cfg.Pools[i].HealthCheck.Config, &cfg.Pools[i].Passive
		p := fmt.Sprintf("pools[%d].health_check.", i)
		inherit(explicit[p+"interval"], &hc.Interval, g.Interval)
		inherit(explicit[p+"timeout"], &hc.Timeout, g.Timeout)
		inherit(explicit[p+"retries"], &hc.Fall, g.Fall)
		inherit(explicit[p+"rise"], &hc.Rise, g.Rise)
		inherit(explicit[p+"max_interval"], &hc.MaxInterval, g.MaxInterval)
		inherit(explicit[p+"type"], &hc.Type, g.Type)
		inherit(explicit[p+"method"], &hc.Method, g.Method)
		inherit(explicit[p+"host"], &hc.Host, g.Host)
		inherit(explicit[p+"expect_status"], &hc.ExpectStatus, g.ExpectStatus)
		p = fmt.Sprintf("pools[%d].passive.", i)
		inherit(explicit[p+"consecutive_failures"], &ps.ConsecutiveFailures, gp.ConsecutiveFailures)
		inherit(explicit[p+"ejection_time"], &ps.EjectionTime, gp.EjectionTime)
		inherit(explicit[p+"max_ejection_time"], &ps.MaxEjectionTime, gp.MaxEjectionTime)
		inherit(explicit[p+"max_ejection_percent"], &ps.MaxEjectionPercent, gp.MaxEjectionPercent)
	}
}

// inherit sets *field to global unless the pool wrote the key.
func inherit[T any](written bool, field *T, global T) {
	if !written {
		*field = global
	}
}

// missingCoordinates reports geo.regions[] entries that leave out lat or lon. Validate cannot
// tell a written 0 from a missing key, and 0,0 is a real place, so a forgotten coordinate
// would silently put the region in the Gulf of Guinea.
func missingCoordinates(cfg *Config, explicit map[string]bool) Errors {
	var errs Errors
	for i := range cfg.Geo.Regions {
		for _, key := range []string{"lat", "lon"} {
			if p := fmt.Sprintf("geo.regions[%d].%s", i, key); !explicit[p] {
				errs = append(errs, FieldError{Path: p, Msg: "required"})
			}
		}
	}
	return errs
}

// normalize lower-cases values that are matched case-insensitively, so consumers compare
// with ==.
func normalize(cfg *Config) {
	cfg.Global.LogLevel = strings.ToLower(cfg.Global.LogLevel)
	cfg.Sticky.SameSite = strings.ToLower(cfg.Sticky.SameSite)
	cfg.Cluster.Preset = strings.ToLower(cfg.Cluster.Preset)
	for i := range cfg.Routes {
		cfg.Routes[i].Host = strings.ToLower(cfg.Routes[i].Host)
	}
}
