package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The reference in docs/configuration.md is checked against the code: every key is documented,
// every YAML example loads, and the block of defaults is Default().

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDocsListEveryKey(t *testing.T) {
	doc := readDoc(t)
	// Rows must also follow the schema, since the docs promise that problems are listed in the
	// order of the page.
	last, lastKey := -1, ""
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for _, f := range keysOf(typ) {
			p := keyPath(path, f.key)
			ft := f.field.Type
			if ft.Kind() == reflect.Slice && isSection(ft.Elem()) {
				walk(p+"[]", ft.Elem())
				continue
			}
			if isSection(ft) {
				walk(p, ft)
				continue
			}
			at := strings.Index(doc, "| `"+p+"` |")
			switch {
			case at < 0:
				t.Errorf("docs/configuration.md has no table row for %s", p)
			case at < last:
				t.Errorf("docs/configuration.md lists %s before %s; the schema has it after", p, lastKey)
			default:
				last, lastKey = at, p
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func TestDocsExamplesLoad(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readDoc(t), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d yaml examples, want at least the full example and the defaults", len(blocks))
	}
	sawDefaults := false
	for i, b := range blocks {
		c, err := Parse([]byte(b[1]), nil)
		if err != nil {
			t.Errorf("yaml example %d does not load: %v\n%s", i, err, b[1])
			continue
		}
		if strings.HasPrefix(b[1], "# All defaults\n") {
			sawDefaults = true
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("the defaults example differs from Default():\n got %+v\nwant %+v", c, Default())
			}
		}
	}
	if !sawDefaults {
		t.Error(`no yaml example starts with "# All defaults"`)
	}
}
