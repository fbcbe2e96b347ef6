package hostrule

import (
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	tests := []struct {
		host, problem string // problem "" = valid
	}{
		{"", ""},
		{"example.com", ""},
		{"Example.COM", ""}, // hosts are compared in lower case
		{"api.example.com:8443", ""},
		{"*.example.com", ""},
		{"svc_name.internal", ""},
		{"10.0.0.1", ""},
		{"10.0.0.1:80", ""},
		{"[2001:db8::1]", ""},
		{"[2001:db8::1]:443", ""},
		{"*", `"*" is not a host`},
		{"api.*.example.com", "a wildcard must be the whole leftmost label"},
		{"*api.example.com", "a wildcard must be the whole leftmost label"},
		{"*.10.0.0.1", "an IP address cannot have a wildcard"},
		{"example.com:0", "port 0 out of range 1-65535"},
		{"example.com:https", `invalid port "https"`},
		{"example..com", "empty label"},
		{"example.com.", "empty label"},
		{strings.Repeat("a", 64) + ".com", "label longer than 63 characters"},
		{"-a.com", `a label must not start or end with "-"`},
		{"[zz::1]", `"zz::1" in brackets is not an IPv6 address`},
		{"[::1", `missing "]"`},
		{"[::1]x", `unexpected text after "]"`},
		{"[fe80::1%eth0]", "in brackets is not an IPv6 address"},
		{"bücher.example", "internationalized names must be written in punycode"},
		{"a b", "invalid character ' '"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := Route(tt.host)
			if tt.problem == "" && got != "" || tt.problem != "" && !strings.Contains(got, tt.problem) {
				t.Fatalf("Route(%q) = %q, want %q", tt.host, got, tt.problem)
			}
		})
	}
}

func TestNormalizeRoute(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":       "example.com",
		"example.com.":      "example.com",
		"Example.com.:8080": "example.com:8080",
		" api.example.com ": "api.example.com",
		"[2001:DB8::1]:443": "[2001:db8::1]:443",
	} {
		if got := NormalizeRoute(in); got != want {
			t.Errorf("NormalizeRoute(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPort(t *testing.T) {
	for _, tt := range []struct {
		port    string
		min     int
		problem string
	}{{"80", 1, ""}, {"0", 0, ""}, {"0", 1, "port 0 out of range 1-65535"}, {"65536", 1, "out of range"},
		{"+80", 1, "invalid port"}, {"", 1, "invalid port"}, {"123456", 1, "invalid port"}} {
		if got := Port(tt.port, tt.min); tt.problem == "" && got != "" || !strings.Contains(got, tt.problem) {
			t.Errorf("Port(%q, %d) = %q, want %q", tt.port, tt.min, got, tt.problem)
		}
	}
}
