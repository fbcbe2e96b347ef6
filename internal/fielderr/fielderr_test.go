package fielderr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPrefix(t *testing.T) {
	var rel Errors
	rel.Add("", "whole section")
	rel.Add("address", "missing port")
	rel.Add("seeds[1]", "bad")
	rel.Add("[2].name", "required")
	tests := []struct {
		name   string
		prefix string
		err    error
		want   []string
	}{
		{"nil", "cluster", nil, nil},
		{"relative paths", "cluster", rel, []string{"cluster: whole section", "cluster.address: missing port", "cluster.seeds[1]: bad", "cluster[2].name: required"}},
		{"wrapped", "x", fmt.Errorf("ctx: %w", rel), []string{"x: whole section", "x.address: missing port", "x.seeds[1]: bad", "x[2].name: required"}},
		{"plain error", "geo.database", errors.New("boom"), []string{"geo.database: boom"}},
		{"empty prefix", "", rel, []string{"whole section", "address: missing port", "seeds[1]: bad", "[2].name: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Prefix(tt.prefix, tt.err)
			var lines []string
			for _, fe := range got {
				lines = append(lines, fe.Error())
			}
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Prefix(%q) =\n%s\nwant\n%s", tt.prefix, strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestChecks(t *testing.T) {
	var e Errors
	e.Positive("a", 0)
	e.Positive("ok", time.Second)
	e.Between("b", 11, 1, 10)
	e.Between("ok", 10, 1, 10)
	e.AtLeast("c", -1, 0)
	e.AtLeast("ok", 0, 0)
	e.OneOf("d", "x", "lan", "wan")
	e.OneOf("ok", "wan", "lan", "wan")
	want := "a: must be > 0, got 0s\nb: must be between 1 and 10, got 11\nc: must be >= 0, got -1\nd: must be one of lan, wan; got \"x\""
	if e.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", e.Error(), want)
	}
	if (Errors{}).Err() != nil {
		t.Error("empty Errors.Err() is not nil")
	}
	var as Errors
	if !errors.As(e.Err(), &as) || len(as) != 4 {
		t.Errorf("errors.As on Err() = %v, want the 4 problems", as)
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("x", 100)
	if got := Quote(long); got != `"`+strings.Repeat("x", 64)+`"...` {
		t.Errorf("Quote(100 x) = %s", got)
	}
	if got := Quote("a\nb"); got != `"a\nb"` {
		t.Errorf("Quote = %s", got)
	}
}
