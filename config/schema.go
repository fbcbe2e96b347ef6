package config

import (
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"
)

// schemaField is one key of a section: its name in the file and where its value sits.
type schemaField struct {
	key   string
	index []int // for reflect.Value.FieldByIndex
	field reflect.StructField
}

var fieldCache sync.Map // reflect.Type -> []schemaField

// keysOf lists the keys of the section type t in schema order. A field tagged koanf:",squash"
// (a package's Config embedded in a section, such as gossip.Config in cluster) gives its own
// keys in its place; fields tagged "-" are set by the program and are not keys.
func keysOf(t reflect.Type) []schemaField {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]schemaField)
	}
	var out []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		switch {
		case !f.IsExported() || tag == "" || tag == "-":
		case tag == ",squash":
			for _, sub := range keysOf(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
		default:
			out = append(out, schemaField{key: tag, index: []int{i}, field: f})
		}
	}
	fieldCache.Store(t, out)
	return out
}

// lookupKey finds key in the section type t, with its position among the section's keys.
func lookupKey(t reflect.Type, key string) (schemaField, int, bool) {
	for i, f := range keysOf(t) {
		if f.key == key {
			return f, i, true
		}
	}
	return schemaField{}, 0, false
}

// isSection reports whether t is a section of keys rather than a value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Duration]() &&
		t != reflect.TypeFor[netip.Prefix]() && len(keysOf(t)) > 0
}

// isSecret reports whether the field holds a secret (tag redact:"true").
func (f schemaField) isSecret() bool { return strings.EqualFold(f.field.Tag.Get("redact"), "true") }
