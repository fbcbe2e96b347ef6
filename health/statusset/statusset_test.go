package statusset

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		has     []int // codes that must be in the set
		out     []int // codes that must not be
		canon   string
		wantErr string // substring of the error; "" means valid
	}{
		{name: "default", in: Default, has: []int{200, 204, 301, 399}, out: []int{199, 400, 404, 500}, canon: "200-399"},
		{name: "single code", in: "200", has: []int{200}, out: []int{201, 204, 301}, canon: "200"},
		{name: "range and code", in: "200-299,301", has: []int{200, 250, 299, 301}, out: []int{300, 302, 404}, canon: "200-299,301"},
		{name: "spaces around items", in: " 200 , 204 - 206 ", has: []int{200, 204, 205, 206}, out: []int{201, 207}, canon: "200,204-206"},
		{name: "overlaps merge", in: "200-250,240-299,300", has: []int{200, 260, 300}, out: []int{301}, canon: "200-300"},
		{name: "edges", in: "100,599", has: []int{100, 599}, out: []int{101, 598}, canon: "100,599"},
		{name: "whole range", in: "100-599", has: []int{100, 350, 599}, out: []int{99, 600}, canon: "100-599"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "blank", in: "  ", wantErr: "empty"},
		{name: "trailing comma", in: "200,", wantErr: "empty item"},
		{name: "double comma", in: "200,,204", wantErr: "empty item"},
		{name: "backwards range", in: "299-200", wantErr: `"299-200": range runs backwards`},
		{name: "below 100", in: "99", wantErr: "status 99 out of range 100-599"},
		{name: "above 599", in: "200-600", wantErr: "status 600 out of range"},
		{name: "not a number", in: "2xx", wantErr: `"2xx": not a status code`},
		{name: "not a number in a range", in: "200-2xx", wantErr: `"200-2xx": "2xx" is not a status code`},
		{name: "sign", in: "+200", wantErr: `"+200": not a status code`},
		{name: "open range", in: "200-", wantErr: `"200-": missing status code`},
		{name: "four digits", in: "2000", wantErr: `"2000": not a status code`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if s != (Set{}) {
					t.Fatalf("Parse(%q) returned a non-empty set with its error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.in, err)
			}
			for _, c := range tt.has {
				if !s.Contains(c) {
					t.Errorf("Parse(%q).Contains(%d) = false", tt.in, c)
				}
			}
			for _, c := range tt.out {
				if s.Contains(c) {
					t.Errorf("Parse(%q).Contains(%d) = true", tt.in, c)
				}
			}
			if got := s.String(); got != tt.canon {
				t.Errorf("String() = %q, want %q", got, tt.canon)
			}
		})
	}
}

func TestContainsOutOfRange(t *testing.T) {
	s, err := Parse("100-599")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{-1, 0, 99, 600, 1 << 20} {
		if s.Contains(c) {
			t.Errorf("Contains(%d) = true for a code outside 100-599", c)
		}
	}
}

// FuzzParse checks that Parse never panics, that what it accepts prints back to an equal set,
// and that every code it claims is within range.
func FuzzParse(f *testing.F) {
	for _, s := range []string{Default, "200", "200-299,301", " 200 , 204-206", "", "299-200", "99", "2xx", "200,", "100-599"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil || again != s {
			t.Fatalf("Parse(%q) prints %q, which parses to %v, %v", in, canon, again.String(), err)
		}
		if canon == "" {
			t.Fatalf("Parse(%q) accepted an empty set", in)
		}
	})
}
