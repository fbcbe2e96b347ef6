package config

import (
	"fmt"
	"strings"
	"testing"
)

// benchDoc is a configuration of pools×perPool backends, one route per pool.
func benchDoc(pools, perPool int) []byte {
	var b strings.Builder
	b.WriteString("global:\n  bind_address: \"127.0.0.1:0\"\n  log_level: warn\npools:\n")
	for p := range pools {
		fmt.Fprintf(&b, "  - name: p%d\n    backends:\n", p)
		for i := range perPool {
			fmt.Fprintf(&b, "      - address: \"10.%d.%d.%d:%d\"\n", p/250, p%250, i%250+1, 8000+i/250)
		}
	}
	b.WriteString("routes:\n")
	for p := range pools {
		fmt.Fprintf(&b, "  - host: \"p%d.example\"\n    pool: p%d\n", p, p)
	}
	return []byte(b.String())
}

// BenchmarkParseYAML reads a file of 10,000 backends into the decoder's tree: the line parser
// (blockTree), and yaml.v3's node tree with simpleTree, which every other document takes.
func BenchmarkParseYAML(b *testing.B) {
	doc := benchDoc(100, 100)
	b.Run("blockTree", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := blockTree(doc, nil); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("yaml.v3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, simple, err := viaTree(doc); err != nil || !simple {
				b.Fatal(err)
			}
		}
	})
}
