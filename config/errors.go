package config

import (
	"cmp"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// FieldError is one problem in the configuration, located by its key path
// ("pools[1].backends[0].address").
type FieldError = fielderr.FieldError

// Errors is every problem found in one configuration, in the order the keys appear in the
// schema (the order of docs/configuration.md); environment variables naming unknown keys come
// last. Use errors.As to get it from the error Load returns.
type Errors = fielderr.Errors

// sortErrors orders errs by schema position. The sort is stable so that several messages for
// one key keep the order they were found in.
func sortErrors(errs Errors) {
	keys := make(map[string][]orderPart, len(errs))
	for _, e := range errs {
		if _, ok := keys[e.Path]; !ok {
			keys[e.Path] = pathOrder(e.Path)
		}
	}
	slices.SortStableFunc(errs, func(a, b FieldError) int {
		return slices.CompareFunc(keys[a.Path], keys[b.Path], func(x, y orderPart) int {
			return cmp.Or(cmp.Compare(x.rank, y.rank), strings.Compare(x.name, y.name))
		})
	})
}

// orderPart is one path segment's position: a struct field's index, a list index, or for keys
// the schema does not know, a rank after every known key plus the name to order them by.
type orderPart struct {
	rank int
	name string
}

const (
	rankUnknown = math.MaxInt - 1
	rankEnvVar  = math.MaxInt
)

// pathOrder maps a key path to schema positions by walking the Config type along it.
func pathOrder(path string) []orderPart {
	if strings.HasPrefix(path, envPrefix) {
		return []orderPart{{rank: rankEnvVar, name: path}}
	}
	var parts []orderPart
	t := reflect.TypeFor[Config]()
	for path != "" {
		var seg string
		switch {
		case strings.HasPrefix(path, `["`):
			q, err := strconv.QuotedPrefix(path[1:])
			if err != nil {
				return append(parts, orderPart{rank: rankUnknown, name: path})
			}
			seg, _ = strconv.Unquote(q)
			path = strings.TrimPrefix(path[1+len(q):], "]")
			parts = append(parts, orderPart{rank: rankUnknown, name: seg})
			t = nil
			continue
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			n, err := strconv.Atoi(path[1:max(end, 1)])
			if end < 0 || err != nil {
				return append(parts, orderPart{rank: rankUnknown, name: path})
			}
			parts = append(parts, orderPart{rank: n})
			path = path[end+1:]
			if t != nil && t.Kind() == reflect.Slice {
				t = t.Elem()
			} else {
				t = nil
			}
			continue
		case path[0] == '.':
			path = path[1:]
			continue
		}
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		seg, path = path[:end], path[end:]
		if t != nil && t.Kind() == reflect.Struct {
			if f, i, ok := lookupKey(t, seg); ok {
				parts = append(parts, orderPart{rank: i})
				t = f.field.Type
				continue
			}
		}
		parts = append(parts, orderPart{rank: rankUnknown, name: seg})
		t = nil
	}
	return parts
}

// under reports whether path is root or lies inside it, so that a value that failed to decode
// does not also produce validation errors about the default left in its place.
func under(path, root string) bool {
	if root == "" || path == root {
		return true
	}
	return strings.HasPrefix(path, root) && (path[len(root)] == '.' || path[len(root)] == '[')
}
