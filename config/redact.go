package config

import (
	"maps"
	"reflect"
)

// redactedText replaces secret values in Redacted copies.
const redactedText = "REDACTED"

// Redacted returns a deep copy of c that is safe to log or serve from the admin API: every
// non-empty field tagged redact:"true" (sticky.secret, discovery.consul.token,
// cluster.gossip_key, the values of tracing.headers) reads "REDACTED". Tagging is what marks a field secret, so a secret added
// later is covered by adding the tag.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	out := *c
	redact(reflect.ValueOf(&out).Elem())
	return &out
}

// redact gives v its own copy of every slice and map below it (the shallow struct copy in
// Redacted shares them with the original) and blanks secret fields.
func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				// Value types from other packages (netip.Prefix): the struct copy copied them.
				continue
			}
			fv := v.Field(i)
			if f.Tag.Get("redact") == "true" {
				switch {
				case fv.Kind() == reflect.String && fv.String() != "":
					fv.SetString(redactedText)
				case fv.Kind() == reflect.Map && fv.Len() > 0:
					// Keys name things (header names); values are the secrets.
					hidden := make(map[string]string, fv.Len())
					for k := range fv.Interface().(map[string]string) {
						hidden[k] = redactedText
					}
					fv.Set(reflect.ValueOf(hidden))
				case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String && fv.Len() > 0:
					hidden := reflect.MakeSlice(fv.Type(), fv.Len(), fv.Len())
					for i := range fv.Len() {
						hidden.Index(i).SetString(redactedText)
					}
					fv.Set(hidden)
				}
				continue
			}
			redact(fv)
		}
	case reflect.Map:
		// Maps hold plain strings (TestSchemaKinds), so a shallow clone is a deep copy.
		if !v.IsNil() {
			v.Set(reflect.ValueOf(maps.Clone(v.Interface().(map[string]string))))
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		v.Set(cp)
		for i := range v.Len() {
			redact(v.Index(i))
		}
	}
}
