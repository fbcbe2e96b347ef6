package config

import (
	"errors"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// owners says which package defines the keys under each section: the longest prefix of a key
// path that is listed here names the package whose Config type declares its field. Keys no
// prefix covers are config's own.
var owners = map[string]string{
	"discovery.consul.":         "github.com/veloflux/veloflux/discovery/consul",
	"cluster.":                  "github.com/veloflux/veloflux/gossip",
	"cluster.health.":           "github.com/veloflux/veloflux/health/consensus",
	"retry.":                    "github.com/veloflux/veloflux/proxy",
	"sticky.":                   "github.com/veloflux/veloflux/proxy",
	"rate_limit.":               "github.com/veloflux/veloflux/proxy/ratelimit",
	"global.passive.":           "github.com/veloflux/veloflux/health",
	"global.health_check.":      "github.com/veloflux/veloflux/health",
	"geo.":                      "github.com/veloflux/veloflux/geo",
	"pools[].health_check.":     "github.com/veloflux/veloflux/health",
	"pools[].health_check.path": "github.com/veloflux/veloflux/config",
	"pools[].passive.":          "github.com/veloflux/veloflux/health",
	"global.tls.certificates[]": "github.com/veloflux/veloflux/certs",
	"global.tls.storage_prefix": "github.com/veloflux/veloflux/acme/consulkv",
	"global.tls.lock_ttl":       "github.com/veloflux/veloflux/acme/consulkv",
	"tracing.":                  "github.com/veloflux/veloflux/telemetry/tracing",
}

func ownerOf(key string) string {
	best, pkg := "", "github.com/veloflux/veloflux/config"
	for prefix, p := range owners {
		if strings.HasPrefix(key, prefix) && len(prefix) > len(best) {
			best, pkg = prefix, p
		}
	}
	return pkg
}

// TestDocumentedKeysReachTheirOwner takes every key in the tables of docs/configuration.md,
// writes a value for it alone and decodes it: the value must land in the field of the type
// that owns the section, declared in the package owners names, and nowhere else.
func TestDocumentedKeysReachTheirOwner(t *testing.T) {
	rows := regexp.MustCompile("(?m)^\\| `([a-z0-9_\\[\\]]+\\.[a-z0-9_.\\[\\]]+)` \\|").FindAllStringSubmatch(readDoc(t), -1)
	if len(rows) < 100 {
		t.Fatalf("found %d key rows in docs/configuration.md, want every key", len(rows))
	}
	seen := map[string]bool{}
	for _, row := range rows {
		key := row[1]
		if seen[key] {
			continue
		}
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			field, owner, ok := fieldOf(key)
			if !ok {
				t.Fatalf("no field for %s in the schema", key)
			}
			if field.Type.Kind() == reflect.Slice && isSection(field.Type.Elem()) {
				t.Skip("a list of sections; its keys have rows of their own")
			}
			if want := ownerOf(key); owner.PkgPath() != want {
				t.Errorf("%s is declared by %s.%s, want a type of %s", key, owner.PkgPath(), owner.Name(), want)
			}
			def, _ := valueAt(reflect.ValueOf(Default()).Elem(), strings.Split(key, "."))
			value, want := sampleValue(t, field.Type, def)
			doc := nest(strings.Split(key, "."), value)
			cfg := Default()
			d := newDecoder()
			d.decode("", doc, reflect.ValueOf(cfg).Elem())
			if len(d.errs) > 0 {
				t.Fatalf("decoding %v: %v", doc, d.errs)
			}
			got, ok := valueAt(reflect.ValueOf(cfg).Elem(), strings.Split(key, "."))
			if !ok {
				t.Fatalf("%s: no value after decoding", key)
			}
			if !reflect.DeepEqual(got.Interface(), want) {
				t.Errorf("%s decoded to %#v, want %#v", key, got.Interface(), want)
			}
			// Only that key changed: nothing else shares its field.
			changed := 0
			var paths []string
			diffPaths("", reflect.ValueOf(*Default()), reflect.ValueOf(*cfg), &paths)
			for _, p := range paths {
				if p != strings.TrimSuffix(strings.SplitN(key, "[]", 2)[0], ".") {
					changed++
				}
			}
			if changed > 0 {
				t.Errorf("decoding %s alone changed %v", key, paths)
			}
		})
	}
}

// fieldOf walks key through the schema and returns its field and the struct type that
// declares it (for a squashed section, the embedded type).
func fieldOf(key string) (reflect.StructField, reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	segs := strings.Split(key, ".")
	for i, seg := range segs {
		seg, list := strings.CutSuffix(seg, "[]")
		f, _, ok := lookupKey(t, seg)
		if !ok {
			return reflect.StructField{}, nil, false
		}
		owner := t
		for _, j := range f.index[:len(f.index)-1] {
			owner = owner.Field(j).Type
		}
		if i == len(segs)-1 {
			return f.field, owner, true
		}
		t = f.field.Type
		if list {
			t = t.Elem()
		}
	}
	return reflect.StructField{}, nil, false
}

// valueAt reads the value at key in v, through the first element of lists of sections.
func valueAt(v reflect.Value, segs []string) (reflect.Value, bool) {
	for _, seg := range segs {
		seg, list := strings.CutSuffix(seg, "[]")
		f, _, ok := lookupKey(v.Type(), seg)
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.index)
		if list {
			if v.Len() == 0 {
				return reflect.Value{}, false
			}
			v = v.Index(0)
		}
	}
	return v, true
}

// nest builds the YAML tree that sets segs to value: a list of one section for "name[]".
func nest(segs []string, value any) any {
	if len(segs) == 0 {
		return value
	}
	seg, list := strings.CutSuffix(segs[0], "[]")
	inner := nest(segs[1:], value)
	if list {
		inner = []any{inner}
	}
	return map[string]any{seg: inner}
}

// sampleValue returns a YAML value for a field of type typ that differs from its default def
// (invalid when the key is in a list of sections), and what it decodes to.
func sampleValue(t *testing.T, typ reflect.Type, def reflect.Value) (yaml any, want any) {
	switch typ {
	case reflect.TypeFor[time.Duration]():
		return "7s", 7 * time.Second
	case reflect.TypeFor[netip.Prefix]():
		return "10.7.0.0/16", netip.MustParsePrefix("10.7.0.0/16")
	case reflect.TypeFor[[]string]():
		return []any{"a7", "b7"}, []string{"a7", "b7"}
	case reflect.TypeFor[[]netip.Prefix]():
		return []any{"10.7.0.0/16"}, []netip.Prefix{netip.MustParsePrefix("10.7.0.0/16")}
	case reflect.TypeFor[map[string]string]():
		return map[string]any{"K7": "v7"}, map[string]string{"K7": "v7"}
	}
	switch typ.Kind() {
	case reflect.String:
		return "v7", reflect.ValueOf("v7").Convert(typ).Interface()
	case reflect.Bool:
		b := !def.IsValid() || !def.Bool()
		return b, b
	case reflect.Int:
		return 7777, reflect.ValueOf(7777).Convert(typ).Interface()
	case reflect.Float64:
		return 7.5, reflect.ValueOf(7.5).Convert(typ).Interface()
	}
	t.Fatalf("no sample value for type %s", typ)
	return nil, nil
}

// TestProgramFieldsAreNoKeys: a field tagged koanf:"-" is set by the program (a node name, a
// callback, a poll interval), so the file cannot set it: written under its own name it is an
// unknown key, and Default leaves it zero for the program to fill.
func TestProgramFieldsAreNoKeys(t *testing.T) {
	var program []string
	var walk func(path string, typ reflect.Type, v reflect.Value)
	walk = func(path string, typ reflect.Type, v reflect.Value) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch tag := f.Tag.Get("koanf"); {
			case tag == "-":
				program = append(program, keyPath(path, snake(f.Name)))
				if f.Type.Kind() == reflect.Func && !v.Field(i).IsNil() {
					t.Errorf("%s: Default sets the program's %s", path, f.Name)
				}
			case tag == ",squash":
				walk(path, f.Type, v.Field(i))
			case f.IsExported() && isSection(f.Type):
				walk(keyPath(path, tag), f.Type, v.Field(i))
			}
		}
	}
	walk("", reflect.TypeFor[Config](), reflect.ValueOf(*Default()))
	want := []string{"cluster.find_peers", "cluster.region", "cluster.version", "cluster.node_name",
		"cluster.expire_interval", "cluster.health.node_name", "cluster.health.membership_poll",
		"cluster.health.queue_size"}
	for _, k := range want {
		if !slices.Contains(program, k) {
			t.Errorf("%s is not among the program's fields %v", k, program)
		}
	}
	for _, key := range program {
		t.Run(key, func(t *testing.T) {
			_, err := Parse([]byte(nestYAML(key, "1")), nil)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Path != key || errs[0].Msg != "unknown key" {
				t.Errorf("setting %s in the file: %v, want it refused as an unknown key", key, err)
			}
		})
	}
}

// snake turns a Go field name into a key name: NodeName is node_name.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// nestYAML writes key: value as nested flow mappings.
func nestYAML(key, value string) string {
	segs := strings.Split(key, ".")
	out := value
	for _, s := range slices.Backward(segs) {
		out = "{" + s + ": " + out + "}"
	}
	return strings.TrimSuffix(strings.TrimPrefix(out, "{"), "}") + "\n"
}
