package config

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veloflux/veloflux/internal/pace"
)

// decoder copies a YAML document (maps, lists and scalars as go.yaml.in/yaml/v3 produces them)
// or single environment values onto a Config, key by key. It is hand-written rather than
// mapstructure because every problem must come back with its exact key path, list indices
// included, and all problems must be collected instead of stopping at the first.
type decoder struct {
	errs Errors
	// explicit holds the key paths that a layer set, so that pool health checks inherit
	// only the global fields the pool did not write.
	explicit map[string]bool
	// inBackend is set while a pools[].backends[] entry is decoded. No rule asks which of a
	// backend's keys were written (its own health_check keys mean "the pool's" when empty),
	// so their paths are left out of explicit: with 10,000 backends they were most of it.
	inBackend bool
	pace      *pace.Pacer // steps aside between list items
}

// envValue is a value read from an environment variable. Environment values are text, so
// unlike YAML values they are parsed into whatever type the key has.
type envValue struct {
	Var   string
	Value string
	key   string // the key path Var names; set by applyEnv
}

func newDecoder() *decoder { return &decoder{explicit: make(map[string]bool)} }

// fail records a problem at path. A value from the environment names its variable, since
// that is where the user has to look.
func (d *decoder) fail(path string, src any, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if ev, ok := src.(envValue); ok {
		msg += " (from " + ev.Var + ")"
	}
	d.errs = append(d.errs, FieldError{Path: path, Msg: msg})
}

// decode applies src onto dst. A null src leaves dst alone: writing a key without a value
// means the same as leaving it out.
func (d *decoder) decode(path string, src any, dst reflect.Value) {
	if src == nil {
		return
	}
	if !d.inBackend {
		d.explicit[path] = true
	}
	switch dst.Type() {
	case reflect.TypeFor[time.Duration]():
		d.decodeDuration(path, src, dst)
		return
	case reflect.TypeFor[netip.Prefix]():
		d.decodePrefix(path, src, dst)
		return
	}
	switch dst.Kind() {
	case reflect.Struct:
		d.decodeStruct(path, src, dst)
	case reflect.Slice:
		d.decodeSlice(path, src, dst)
	case reflect.Map:
		d.decodeMap(path, src, dst)
	case reflect.String:
		switch v := src.(type) {
		case string:
			dst.SetString(v)
		case envValue:
			dst.SetString(v.Value)
		default:
			d.fail(path, src, "expected a string, got %s (quote the value to make it text)", describe(src))
		}
	case reflect.Bool:
		d.decodeBool(path, src, dst)
	case reflect.Int:
		d.decodeInt(path, src, dst)
	case reflect.Float64:
		d.decodeFloat(path, src, dst)
	default:
		// Unreachable while TestSchemaKinds passes; reported rather than panicking so that a
		// new field of an unsupported type fails loudly in tests instead of crashing cmd.
		d.fail(path, src, "internal error: unsupported type %s", dst.Type())
	}
}

func (d *decoder) decodeStruct(path string, src any, dst reflect.Value) {
	m, ok := asMap(src)
	if !ok {
		d.fail(path, src, "expected a mapping, got %s", describe(src))
		return
	}
	var buf [16]string // a section's keys, without an allocation for most
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := keyPath(path, k)
		f, _, ok := lookupKey(dst.Type(), k)
		if !ok {
			d.fail(p, nil, "unknown key")
			continue
		}
		if f.isSecret() {
			d.decodeSecret(p, m[k], dst.FieldByIndex(f.index))
			continue
		}
		d.decode(p, m[k], dst.FieldByIndex(f.index))
	}
}

// decodeSecret is decode for a string or list-of-strings field tagged redact:"true". A value
// of the wrong type is reported by its type alone: a mistyped secret is still the secret, and
// problems end up in logs and on terminals.
func (d *decoder) decodeSecret(path string, src any, dst reflect.Value) {
	if dst.Kind() == reflect.Map {
		d.decodeSecretMap(path, src, dst)
		return
	}
	if dst.Kind() == reflect.Slice {
		d.decodeSecretList(path, src, dst)
		return
	}
	switch v := src.(type) {
	case nil:
		return
	case string:
		dst.SetString(v)
	case envValue:
		dst.SetString(v.Value)
	default:
		d.fail(path, nil, "expected a string, got %s (quote the value to make it text; the value is not shown because the key is secret)", kindOf(src))
	}
	if !d.inBackend {
		d.explicit[path] = true
	}
}

// decodeSecretMap decodes a mapping whose values are secrets (tracing.headers) as decodeMap
// does, each value as decodeSecret does; the keys are names and are shown in problems.
func (d *decoder) decodeSecretMap(path string, src any, dst reflect.Value) {
	m, ok := asMap(src)
	if !ok {
		d.fail(path, nil, "expected a mapping, got %s", kindOf(src))
		return
	}
	d.explicit[path] = true
	if len(m) == 0 {
		dst.SetZero()
		return
	}
	out := make(map[string]string, len(m))
	for k, item := range m {
		p := path + "[" + strconv.Quote(k) + "]"
		if item == nil {
			d.fail(p, nil, "missing value")
			continue
		}
		before := len(d.errs)
		var v string
		d.decodeSecret(p, item, reflect.ValueOf(&v).Elem())
		if len(d.errs) == before {
			out[k] = v
		}
	}
	dst.Set(reflect.ValueOf(out))
}

// decodeSecretList decodes a list of secrets, each element as decodeSecret does. From the
// environment the list is comma-separated, as other lists are.
func (d *decoder) decodeSecretList(path string, src any, dst reflect.Value) {
	var items []any
	switch v := src.(type) {
	case nil:
		return
	case []any:
		items = v
	case envValue:
		for _, s := range strings.Split(v.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	default:
		d.fail(path, nil, "expected a list, got %s (the value is not shown because the key is secret)", kindOf(src))
		return
	}
	out := reflect.Zero(dst.Type()) // [] is no keys, like an absent key
	if len(items) > 0 {
		out = reflect.MakeSlice(dst.Type(), len(items), len(items))
	}
	for i, item := range items {
		d.decodeSecret(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i))
	}
	dst.Set(out)
	d.explicit[path] = true
}

// decodeSlice replaces the whole list: lists are never merged across layers, because merging
// pools or routes element by element would silently combine two unrelated entries.
func (d *decoder) decodeSlice(path string, src any, dst reflect.Value) {
	if ev, ok := src.(envValue); ok {
		d.decodeEnvList(path, ev, dst)
		return
	}
	items, ok := src.([]any)
	if !ok {
		d.fail(path, src, "expected a list, got %s", describe(src))
		return
	}
	if len(items) == 0 {
		// nil, like the defaults, so that "[]" and leaving the key out give equal configs.
		dst.SetZero()
		return
	}
	out := reflect.MakeSlice(dst.Type(), len(items), len(items))
	backends := false
	switch dst.Type().Elem() {
	case reflect.TypeFor[Pool]():
		pools := out.Interface().([]Pool)
		for i := range pools {
			pools[i] = defaultPool()
		}
	case reflect.TypeFor[Backend]():
		backends = true
		bs := out.Interface().([]Backend)
		for i := range bs {
			bs[i] = defaultBackend()
		}
	case reflect.TypeFor[Route]():
		routes := out.Interface().([]Route)
		for i := range routes {
			routes[i] = defaultRoute()
		}
	}
	prev := d.inBackend
	d.inBackend = d.inBackend || backends
	for i, item := range items {
		d.pace.Step()
		p := path + "[" + strconv.Itoa(i) + "]"
		if item == nil {
			d.fail(p, nil, "empty list item")
			continue
		}
		d.decode(p, item, out.Index(i))
	}
	d.inBackend = prev
	dst.Set(out)
}

// decodeMap replaces the whole map, for the same reason lists are replaced. Each entry's path
// quotes its key (geo.country_regions["DE"]), since keys are data rather than schema names and
// a bare one could read as a key of the schema. An entry whose value is missing or fails to
// decode is left out, so validation does not report it a second time.
func (d *decoder) decodeMap(path string, src any, dst reflect.Value) {
	m, ok := asMap(src)
	if !ok {
		d.fail(path, src, "expected a mapping, got %s", describe(src))
		return
	}
	if len(m) == 0 {
		// nil, like the defaults, so that "{}" and leaving the key out give equal configs.
		dst.SetZero()
		return
	}
	out := reflect.MakeMapWithSize(dst.Type(), len(m))
	for k, item := range m {
		p := path + "[" + strconv.Quote(k) + "]"
		if item == nil {
			// Unlike a missing key, which keeps a default, an entry has no default to keep.
			d.fail(p, nil, "missing value")
			continue
		}
		before := len(d.errs)
		el := reflect.New(dst.Type().Elem()).Elem()
		d.decode(p, item, el)
		if len(d.errs) == before {
			out.SetMapIndex(reflect.ValueOf(k), el)
		}
	}
	dst.Set(out)
}

// decodeEnvList reads a comma-separated list. Only lists of scalars (trusted_proxies,
// discovery.consul.datacenters and register.tags) get here:
// the environment walk refuses lists of sections before decoding.
func (d *decoder) decodeEnvList(path string, ev envValue, dst reflect.Value) {
	var fields []string
	for f := range strings.SplitSeq(ev.Value, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		dst.SetZero()
		return
	}
	out := reflect.MakeSlice(dst.Type(), len(fields), len(fields))
	for i, f := range fields {
		d.decode(fmt.Sprintf("%s[%d]", path, i), envValue{Var: ev.Var, Value: f}, out.Index(i))
	}
	dst.Set(out)
}

func (d *decoder) decodeBool(path string, src any, dst reflect.Value) {
	switch v := src.(type) {
	case bool:
		dst.SetBool(v)
		return
	case envValue:
		if b, err := strconv.ParseBool(strings.TrimSpace(v.Value)); err == nil {
			dst.SetBool(b)
			return
		}
	}
	d.fail(path, src, "expected true or false, got %s", describe(src))
}

func (d *decoder) decodeInt(path string, src any, dst reflect.Value) {
	switch v := src.(type) {
	case int:
		dst.SetInt(int64(v))
		return
	case int64:
		dst.SetInt(v)
		return
	case uint64:
		if v <= math.MaxInt64 {
			dst.SetInt(int64(v))
			return
		}
		d.fail(path, src, "integer %d out of range", v)
		return
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
			dst.SetInt(int64(v))
			return
		}
	case envValue:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64); err == nil {
			dst.SetInt(n)
			return
		}
	}
	d.fail(path, src, "expected an integer, got %s", describe(src))
}

func (d *decoder) decodeFloat(path string, src any, dst reflect.Value) {
	switch v := src.(type) {
	case float64:
		dst.SetFloat(v)
		return
	case int:
		dst.SetFloat(float64(v))
		return
	case int64:
		dst.SetFloat(float64(v))
		return
	case uint64:
		dst.SetFloat(float64(v))
		return
	case envValue:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64); err == nil {
			dst.SetFloat(f)
			return
		}
	}
	d.fail(path, src, "expected a number, got %s", describe(src))
}

func (d *decoder) decodeDuration(path string, src any, dst reflect.Value) {
	var text string
	switch v := src.(type) {
	case string:
		text = v
	case envValue:
		text = strings.TrimSpace(v.Value)
	case int:
		// A bare 0 is unambiguous and is how people write "no limit"; any other bare number
		// has no unit, and guessing seconds or nanoseconds would be wrong half the time.
		if v == 0 {
			dst.SetInt(0)
			return
		}
		d.fail(path, src, "invalid duration %d: missing unit, e.g. \"%ds\"", v, v)
		return
	default:
		d.fail(path, src, "invalid duration: expected text such as \"10s\", got %s", describe(src))
		return
	}
	dur, err := time.ParseDuration(text)
	if err != nil {
		d.fail(path, src, "invalid duration %s", quote(text))
		return
	}
	dst.SetInt(int64(dur))
}

func (d *decoder) decodePrefix(path string, src any, dst reflect.Value) {
	var text string
	switch v := src.(type) {
	case string:
		text = v
	case envValue:
		text = v.Value
	default:
		d.fail(path, src, "expected a CIDR or IP address, got %s", describe(src))
		return
	}
	p, ok := parsePrefix(text)
	if !ok {
		d.fail(path, src, "invalid CIDR or IP address %s", quote(text))
		return
	}
	dst.Set(reflect.ValueOf(p))
}

// parsePrefix accepts "10.0.0.0/8" or a bare address, which means that one address. Host bits
// are cleared and IPv4-mapped IPv6 forms become IPv4, so that equal ranges compare equal and
// a mapped client address matches the IPv4 rule its owner wrote.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// asMap accepts both map shapes yaml.v3 produces: map[string]any, and map[any]any when a
// mapping has a non-string key such as 1 or null.
func asMap(src any) (map[string]any, bool) {
	switch m := src.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			if s, ok := k.(string); ok {
				out[s] = v
			} else {
				out[fmt.Sprint(k)] = v
			}
		}
		return out, true
	}
	return nil, false
}

// keyPath appends key to path. Keys that could not be schema keys are quoted so that a path
// never reads as a different, valid one ("global[\"tls.cert_file\"]").
func keyPath(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	default:
		return path + "." + key
	}
}

// describe names a value's type and shows it, for "expected X, got Y" messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "text " + quote(v)
	case envValue:
		return quote(v.Value)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case int, int64, uint64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return "number " + strconv.FormatFloat(v, 'g', -1, 64)
	case time.Time:
		return "timestamp " + v.Format(time.RFC3339)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// kindOf names a value's type without showing it, for secrets.
func kindOf(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case int, int64, uint64:
		return "an integer"
	case float64:
		return "a number"
	case time.Time:
		return "a timestamp"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// quote shows user text in messages, shortened so a pasted certificate does not flood them.
func quote(s string) string {
	const maxShown = 64
	if len(s) > maxShown {
		return strconv.Quote(s[:maxShown]) + "..."
	}
	return strconv.Quote(s)
}
