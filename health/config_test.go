package health

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantFile []string // Validate's problems, the file's rules; none means valid
		wantRun  []string // validateRun's, what NewChecker refuses
	}{
		{name: "default is valid", mutate: func(*Config) {}},
		{
			name:     "zero interval",
			mutate:   func(c *Config) { c.Interval = 0 },
			wantFile: []string{"interval: must be > 0, got 0s"},
			wantRun:  []string{"interval: must be > 0, got 0s"},
		},
		{
			name:     "negative timeout",
			mutate:   func(c *Config) { c.Timeout = -time.Second },
			wantFile: []string{"timeout: must be > 0, got -1s"},
			wantRun:  []string{"timeout: must be > 0, got -1s"},
		},
		{
			name:     "zero fall is the file's retries",
			mutate:   func(c *Config) { c.Fall = 0 },
			wantFile: []string{"retries: must be >= 1, got 0"},
			wantRun:  []string{"retries: must be >= 1, got 0"},
		},
		{
			name:     "zero rise",
			mutate:   func(c *Config) { c.Rise = 0 },
			wantFile: []string{"rise: must be >= 1, got 0"},
			wantRun:  []string{"rise: must be >= 1, got 0"},
		},
		{
			name:     "timeout above interval runs but is refused in the file",
			mutate:   func(c *Config) { c.Timeout = 20 * time.Second },
			wantFile: []string{"timeout: must not exceed interval (10s), got 20s"},
		},
		{
			name:     "max interval below interval",
			mutate:   func(c *Config) { c.MaxInterval = 5 * time.Second },
			wantFile: []string{"max_interval: must be at least interval (10s), got 5s"},
			wantRun:  []string{"max_interval: must be 0 (no backoff) or at least interval (10s), got 5s"},
		},
		{name: "max interval equal to interval", mutate: func(c *Config) { c.MaxInterval = c.Interval }},
		{
			name:     "max interval 0 turns backoff off in the Checker only",
			mutate:   func(c *Config) { c.MaxInterval = 0 },
			wantFile: []string{"max_interval: must be at least interval (10s), got 0s"},
		},
		{name: "tcp", mutate: func(c *Config) { c.Type = TypeTCP }},
		{
			name:     "unknown type",
			mutate:   func(c *Config) { c.Type = "icmp" },
			wantFile: []string{`type: must be one of http, tcp; got "icmp"`},
		},
		{
			name:     "empty method",
			mutate:   func(c *Config) { c.Method = "" },
			wantFile: []string{`method: must be an HTTP method such as GET or HEAD, got ""`},
		},
		{
			name:     "method with a space",
			mutate:   func(c *Config) { c.Method = "GET /" },
			wantFile: []string{`method: must be an HTTP method such as GET or HEAD, got "GET /"`},
		},
		{
			name:     "wildcard host",
			mutate:   func(c *Config) { c.Host = "*.example.com" },
			wantFile: []string{`host: invalid host "*.example.com": a Host header cannot be a wildcard`},
		},
		{name: "host with port", mutate: func(c *Config) { c.Host = "svc.internal:8443" }},
		{
			name:     "bad expect_status",
			mutate:   func(c *Config) { c.ExpectStatus = "2xx" },
			wantFile: []string{"expect_status: "},
		},
		{
			name:     "empty expect_status",
			mutate:   func(c *Config) { c.ExpectStatus = "" },
			wantFile: []string{"expect_status: "},
		},
		{
			name:     "all problems reported at once",
			mutate:   func(c *Config) { *c = Config{} },
			wantFile: []string{"interval:", "timeout:", "retries:", "rise:", "type:", "method:", "expect_status:"},
			wantRun:  []string{"interval:", "timeout:", "retries:", "rise:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			for _, check := range []struct {
				name string
				err  error
				want []string
			}{{"Validate", cfg.Validate(), tt.wantFile}, {"validateRun", cfg.validateRun(), tt.wantRun}} {
				if len(check.want) == 0 {
					if check.err != nil {
						t.Errorf("%s() = %v, want nil", check.name, check.err)
					}
					continue
				}
				if check.err == nil {
					t.Errorf("%s() = nil, want errors containing %q", check.name, check.want)
					continue
				}
				for _, want := range check.want {
					if !strings.Contains(check.err.Error(), want) {
						t.Errorf("%s() = %q, want it to contain %q", check.name, check.err, want)
					}
				}
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	want := Config{
		Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2, MaxInterval: time.Minute,
		Type: TypeHTTP, Method: "GET", ExpectStatus: "200-399",
	}
	if got := DefaultConfig(); got != want {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
}

func TestConfigFill(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Method, cfg.Host = "HEAD", "svc.internal"
	got := cfg.Fill(Target{ID: "a", Method: "OPTIONS", ExpectStatus: "204"})
	want := Target{ID: "a", Type: TypeHTTP, Method: "OPTIONS", Host: "svc.internal", ExpectStatus: "204"}
	if got != want {
		t.Fatalf("Fill = %+v, want %+v", got, want)
	}
}

func TestConfigForTarget(t *testing.T) {
	cfg := Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2, MaxInterval: time.Minute}
	with := func(f func(*Config)) Config {
		c := cfg
		f(&c)
		return c
	}
	tests := []struct {
		name   string
		base   Config
		target Target
		want   Config
	}{
		{name: "no overrides", base: cfg, target: Target{}, want: cfg},
		{name: "interval", base: cfg, target: Target{Interval: time.Second}, want: with(func(c *Config) { c.Interval = time.Second })},
		{name: "timeout", base: cfg, target: Target{Timeout: time.Second}, want: with(func(c *Config) { c.Timeout = time.Second })},
		{name: "fall", base: cfg, target: Target{Fall: 7}, want: with(func(c *Config) { c.Fall = 7 })},
		{name: "rise", base: cfg, target: Target{Rise: 4}, want: with(func(c *Config) { c.Rise = 4 })},
		{name: "max interval", base: cfg, target: Target{MaxInterval: 5 * time.Minute}, want: with(func(c *Config) { c.MaxInterval = 5 * time.Minute })},
		{
			name:   "interval above the checker's cap keeps the interval",
			base:   cfg,
			target: Target{Interval: 2 * time.Minute},
			want:   with(func(c *Config) { c.Interval, c.MaxInterval = 2*time.Minute, 2*time.Minute }),
		},
		{
			name:   "no backoff is the interval",
			base:   with(func(c *Config) { c.MaxInterval = 0 }),
			target: Target{},
			want:   with(func(c *Config) { c.MaxInterval = 10 * time.Second }),
		},
		{
			name:   "all",
			base:   cfg,
			target: Target{Interval: 3 * time.Second, Timeout: 2 * time.Second, Fall: 1, Rise: 1, MaxInterval: 30 * time.Second},
			want:   Config{Interval: 3 * time.Second, Timeout: 2 * time.Second, Fall: 1, Rise: 1, MaxInterval: 30 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.base.forTarget(tt.target); got != tt.want {
				t.Fatalf("forTarget(%+v) = %+v, want %+v", tt.target, got, tt.want)
			}
		})
	}
}
