package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeAny is the reference: yaml.v3 decoding the first document into an `any`, nested
// mappings' keys made strings as loadMapping makes them.
func decodeAny(b []byte) (any, error) {
	var doc any
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		return nil, err
	}
	return loadMapping(doc)
}

// viaTree is parseYAML's way for the first document: the node tree, then simpleTree.
func viaTree(b []byte) (v any, simple bool, err error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&root); err != nil {
		return nil, false, err
	}
	v, simple = simpleTree(&root, nil)
	return v, simple, nil
}

func TestSimpleTree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		doc    string
		simple bool
	}{
		{"text", "a: b\nc: \"d\"\ne: 'f'\ng: |\n  h\n", true},
		{"quoted numbers stay text", "a: \"1\"\nb: '1.5'\nc: \"true\"\nd: \"~\"\n", true},
		{"tagged text", "a: !!str 12\nb: !!str true\n", true},
		{"numbers, booleans, null", "a: 1\nb: -2\nc: 0x1f\nd: 1.5\ne: .inf\nf: .nan\ng: true\nh: False\ni: ~\nj:\nk: null\nl: 1e3\nm: 0o17\n", true},
		{"big integer", "a: 18446744073709551615\nb: 9223372036854775807\n", true},
		{"nested", "pools:\n  - name: p\n    backends:\n      - address: \"10.0.0.1:80\"\n        weight: 3\n      - {address: b:1}\n  - []\n  - {}\n", true},
		{"empty collections", "a: []\nb: {}\n", true},
		{"top-level list", "- a\n- 1\n", true},
		{"top-level scalar", "hello\n", true},
		{"top-level null", "~\n", true},
		{"anchor without alias", "a: &x {b: c}\n", true},
		{"alias", "a: &x {b: c}\nd: *x\n", false},
		{"merge key", "a: &x {b: c}\nd: {<<: *x, e: f}\n", false},
		{"explicit int tag", "a: !!int \"12\"\n", false},
		{"explicit float tag on an int", "a: !!float 1\n", false},
		{"custom tag", "a: !foo bar\n", false},
		{"timestamp", "a: 2001-12-14\n", false},
		{"binary", "a: !!binary aGk=\n", false},
		{"non-text key", "1: a\nnull: b\ntrue: c\n", false},
		{"nested non-text key", "a: {1: x}\n", false},
		{"duplicate key", "a: 1\na: 2\n", false},
		{"nested duplicate key", "a:\n  b: 1\n  b: 2\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := decodeAny([]byte(tc.doc))
			got, simple, err := viaTree([]byte(tc.doc))
			if err != nil {
				t.Fatalf("node tree: %v", err)
			}
			if simple != tc.simple {
				t.Fatalf("simple = %v, want %v", simple, tc.simple)
			}
			if !simple {
				return // parseYAML decodes it with yaml.v3, as the reference does
			}
			if wantErr != nil {
				t.Fatalf("yaml.v3 rejects a document simpleTree took: %v", wantErr)
			}
			if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
				t.Fatalf("simpleTree gave\n%s\nyaml.v3 gives\n%s", g, w)
			}
		})
	}
}

// TestParseYAMLFallbackErrors: a document simpleTree leaves to yaml.v3 gets yaml.v3's own
// error, word for word.
func TestParseYAMLFallbackErrors(t *testing.T) {
	for _, doc := range []string{"a: 1\na: 2\n", "a: !!int x\n", "a: {<<: 1}\n", "a: !!binary \"%%%\"\n"} {
		_, wantErr := decodeAny([]byte(doc))
		if wantErr == nil {
			t.Fatalf("%q: yaml.v3 accepts it", doc)
		}
		_, err := parseYAML([]byte(doc), nil)
		if err == nil || err.Error() != "parse YAML: "+wantErr.Error() {
			t.Fatalf("%q: got %v, want parse YAML: %v", doc, err, wantErr)
		}
	}
}

// FuzzSimpleTree: whenever simpleTree takes a document, its value is yaml.v3's.
func FuzzSimpleTree(f *testing.F) {
	for _, s := range []string{
		"a: b\n", "a: [1, 2.5, true, ~, \"x\"]\n", "a: {b: {c: d}}\n", "a: &x 1\nb: *x\n",
		"a: !!str 1\n", "a: 0b101\nb: +1\nc: -.INF\nd: 1_000\n", "- [a, {b: c}]\n", "a: 2001-12-14t21:59:43.10-05:00\n",
		"a: 'It''s'\nb: \"\\u00e9\"\nc: >\n  folded\n  text\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, simple, err := viaTree(data)
		if err != nil || !simple {
			return
		}
		want, wantErr := decodeAny(data)
		if wantErr != nil {
			if errors.Is(wantErr, io.EOF) {
				return
			}
			t.Fatalf("yaml.v3 rejects a document simpleTree took: %v", wantErr)
		}
		if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
			t.Fatalf("simpleTree gave\n%s\nyaml.v3 gives\n%s", g, w)
		}
	})
}

// TestBlockTree: the documents blockTree takes get yaml.v3's value; the others are left to
// yaml.v3.
func TestBlockTree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doc   string
		taken bool
	}{
		{"text", "a: b\nc: \"d\"\ne: 'f'\n", true},
		{"comments", "# head\na: b # c\n\n   # indented\nd: \"e\" # f\ng: 'h'   #i\nj: k#l\n", true},
		{"quoted numbers stay text", "a: \"1\"\nb: '1.5'\nc: \"true\"\nd: \"~\"\n", true},
		{"escapes", "a: \"x\\\"y\\\\z\\n\\t\"\nb: 'it''s'\nc: \"\"\nd: ''\n", true},
		{"numbers, booleans, null", "a: 1\nb: -2\nc: 0x1f\nd: 1.5\ne: .inf\nf: .nan\ng: true\nh: False\ni: ~\nj:\nk: null\nl: 1e3\nm: 0o17\nn: +1\no: 1_000\n", true},
		{"text that starts like a number", "a: 10s\nb: 1.2.3.4:80\nc: yes\nd: no\ne: on\nf: -x\ng: .x\nh: 0.0.0.0/0\n", true},
		{"big integer", "a: 18446744073709551615\nb: 9223372036854775807\n", true},
		{"nested", "pools:\n  - name: p\n    backends:\n      - address: \"10.0.0.1:80\"\n        weight: 3\n      - address: b:1\n  -\n  - x\n", true},
		{"list at its key's column", "a:\n- b\n- c: d\n  e:\n  - f\ng: h\n", true},
		{"entry on its own line", "a:\n  -\n    b: c\n    d: e\n  - \n    - f\n", true},
		{"scalar on its own line", "a:\n  b\nc: d\n", true},
		{"indented document", "  a: b\n  c:\n    d: e\n", true},
		{"odd indentation", "a:\n   b:\n     - c\n     -   d: e\n         f: g\n", true},
		{"quoted keys", "\"a b\": 1\n'c''d': 2\n\"\": 3\n", true},
		{"spaces before the colon", "a  : b\n", true},
		{"colons in values", "a: b:c\nd: http://e/f\n", true},
		{"addresses", "a: 10.0.0.1:80\nb: 1:2\nd: 20011-2:3\ne: 12:30:00\n", true},
		{"date and time", "a: 2001-12-14 21:59:43.10\n", false},
		{"top-level list", "- a\n- 1\n", true},
		{"top-level scalar", "hello\n", true},
		{"no newline at the end", "a: b", true},
		{"flow list", "a: [1, 2]\n", false},
		{"flow mapping", "a: {b: c}\n", false},
		{"block scalar", "a: |\n  b\n", false},
		{"multi-line plain", "a: b\n  c\n", false},
		{"multi-line quoted", "a: \"b\n  c\"\n", false},
		{"anchor", "a: &x b\n", false},
		{"alias", "a: &x b\nc: *x\n", false},
		{"tag", "a: !!str 1\n", false},
		{"document start", "---\na: b\n", false},
		{"second document", "a: b\n---\nc: d\n", false},
		{"tab", "a:\tb\n", false},
		{"carriage return", "a: b\r\n", false},
		{"not ASCII", "a: \"é\"\n", false},
		{"timestamp", "a: 2001-12-14\n", false},
		{"non-text key", "1: a\n", false},
		{"null key", "null: a\n", false},
		{"merge key", "<<: a\n", false},
		{"duplicate key", "a: 1\na: 2\n", false},
		{"bad indentation", "a:\n    b: 1\n  c: 2\n", false},
		{"mapping in a value", "a: b: c\n", false},
		{"list in a list", "- - a\n", false},
		{"unknown escape", "a: \"\\x41\"\n", false},
		{"text after quotes", "a: \"b\" c\n", false},
		{"only comments", "# a\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, taken := blockTree([]byte(tc.doc), nil)
			if taken != tc.taken {
				t.Fatalf("taken = %v, want %v", taken, tc.taken)
			}
			if !taken {
				return
			}
			want, err := decodeAny([]byte(tc.doc))
			if err != nil {
				t.Fatalf("yaml.v3 rejects a document blockTree took: %v", err)
			}
			if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
				t.Fatalf("blockTree gave\n%s\nyaml.v3 gives\n%s", g, w)
			}
		})
	}
}

// FuzzBlockTree: whenever blockTree takes a document, yaml.v3 takes it too, with the same
// value.
func FuzzBlockTree(f *testing.F) {
	for _, s := range []string{
		"a: b\n", "a:\n  - b: c\n    d: \"e\"\n  - 'f'\n", "a: 1 # c\nb: ~\nc:\n", "- a\n- - b\n",
		"a:\n- b\n-\n  c: d\n", "\"a\": 'b''c'\n", "a: \"\\n\\t\\\\\"\n", "a: 0x1f\nb: .5\nc: -.inf\nd: 1_0\n",
		"a: b\n  c: d\n", "a:\n  b\n  c\n", "? a\n: b\n", "a: b #c\n#d\n  # e\nf: g\n",
		"- address: 10.0.0.1:8000\n  weight: 2\n", "a: 2001-12-14 21:59:43.10 -5\nb: 1:20\nc: 0x1:2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, taken := blockTree(data, nil)
		if !taken {
			return
		}
		want, err := decodeAny(data)
		if err != nil {
			t.Fatalf("yaml.v3 rejects a document blockTree took: %v", err)
		}
		if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
			t.Fatalf("blockTree gave\n%s\nyaml.v3 gives\n%s", g, w)
		}
	})
}
