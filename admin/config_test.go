package admin

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestValidateRefusesNoCredentialsOffLoopback(t *testing.T) {
	tests := []struct {
		name     string
		address  string
		loopback bool
	}{
		{"all interfaces, empty host", ":9000", false},
		{"all interfaces, IPv4", "0.0.0.0:9000", false},
		{"all interfaces, IPv6", "[::]:9000", false},
		{"private IPv4", "10.1.2.3:9000", false},
		{"public IPv6", "[2001:db8::1]:9000", false},
		{"hostname", "admin.example.com:9000", false},
		{"localhost lookalike", "localhost.example.com:9000", false},
		{"IPv4 loopback", "127.0.0.1:9000", true},
		{"IPv4 loopback port 0", "127.0.0.1:0", true},
		{"other 127/8 address", "127.0.0.2:9000", true},
		{"IPv6 loopback", "[::1]:9000", true},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:9000", true},
		{"localhost", "localhost:9000", true},
		{"localhost upper case", "LOCALHOST:9000", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Address = tt.address
			err := cfg.Validate()
			if tt.loopback && err != nil {
				t.Fatalf("Validate(%q) without credentials: %v, want nil", tt.address, err)
			}
			if !tt.loopback {
				if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
					t.Fatalf("Validate(%q) without credentials = %v, want a loopback refusal", tt.address, err)
				}
				if _, err := New(cfg, &fakeController{}, nil); err == nil {
					t.Fatalf("New accepted %q without credentials", tt.address)
				}
				// The same address is fine once credentials guard it.
				cfg.User, cfg.Password = "u", "p"
				if err := cfg.Validate(); err != nil {
					t.Fatalf("Validate(%q) with credentials: %v", tt.address, err)
				}
			}
		})
	}
}

func TestValidateCredentialsBothOrNeither(t *testing.T) {
	tests := []struct {
		name, user, pass string
		wantErr          string
	}{
		{"neither", "", "", ""},
		{"both", "admin", "pw", ""},
		{"user only", "admin", "", "VF_ADMIN_PASS: empty"},
		{"password only", "", "pw", "VF_ADMIN_USER: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.User, cfg.Password = tt.user, tt.pass
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error naming %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q echoes the password", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{
		Address:         "no-port",
		User:            "admin",
		MaxFailures:     0,
		Lockout:         -time.Second,
		MaxLockout:      -2 * time.Second,
		TrackedClients:  0,
		ShutdownTimeout: 0,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a config that is wrong everywhere")
	}
	for _, key := range []string{
		"global.admin_address:", "VF_ADMIN_PASS:", "admin.MaxFailures:", "admin.Lockout:",
		"admin.MaxLockout:", "admin.TrackedClients:", "admin.ShutdownTimeout:",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not mention %s:\n%v", key, err)
		}
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate(): %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Password = "only-half"
	_, err := New(cfg, &fakeController{}, nil)
	if err == nil || !strings.Contains(err.Error(), "admin: invalid config") {
		t.Errorf("New with half credentials = %v, want invalid config error", err)
	}
	_, err = New(DefaultConfig(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nil Controller") {
		t.Errorf("New with nil controller = %v, want nil Controller error", err)
	}
}

func TestLoopbackHostHeader(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1:9000", true},
		{"127.0.0.1", true},
		{"localhost:9000", true},
		{"localhost", true},
		{"[::1]:9000", true},
		{"[::1]", true},
		{"evil.example:9000", false},
		{"evil.example", false},
		{"127.0.0.1.nip.io:9000", false},
		{"localhost.evil.example", false},
		{"10.0.0.1:9000", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := loopbackHostHeader(tt.host); got != tt.want {
				t.Errorf("loopbackHostHeader(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// FuzzLoopbackHostHeader checks the Host-header parser against net/url's reading of the same
// authority: whenever url.Parse understands it as a plain host[:port], both must agree on
// whether it is loopback, so no Host trick gets a rebinding page past the check.
func FuzzLoopbackHostHeader(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:9000", "localhost", "[::1]:1", "evil.example", "127.0.0.1.evil", "[::ffff:127.0.0.1]",
		"localhost:80@evil", "127.0.0.1%2f", "[fe80::1%25eth0]:9", "0x7f.1", "0177.0.0.1", "::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got := loopbackHostHeader(host)
		u, err := url.Parse("http://" + host)
		if err != nil || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Host != host {
			return
		}
		if want := isLoopbackHost(u.Hostname()); got != want {
			t.Fatalf("loopbackHostHeader(%q) = %v, but url.Parse sees host %q (loopback %v)", host, got, u.Hostname(), want)
		}
	})
}
