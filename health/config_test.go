package health

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string // substrings that must all appear; none means valid
	}{
		{name: "default is valid", mutate: func(*Config) {}},
		{
			name:    "zero interval",
			mutate:  func(c *Config) { c.Interval = 0 },
			wantErr: []string{"global.health_check.interval: must be positive"},
		},
		{
			name:    "negative timeout",
			mutate:  func(c *Config) { c.Timeout = -time.Second },
			wantErr: []string{"global.health_check.timeout: must be positive"},
		},
		{
			name:    "zero fall",
			mutate:  func(c *Config) { c.Fall = 0 },
			wantErr: []string{"global.health_check.retries: must be at least 1"},
		},
		{
			name:    "zero rise",
			mutate:  func(c *Config) { c.Rise = 0 },
			wantErr: []string{"rise: must be at least 1"},
		},
		{
			name:    "max interval below interval",
			mutate:  func(c *Config) { c.MaxInterval = 5 * time.Second },
			wantErr: []string{"global.health_check.max_interval: must be 0 (no backoff) or at least interval (10s), got 5s"},
		},
		{name: "max interval equal to interval", mutate: func(c *Config) { c.MaxInterval = c.Interval }},
		{name: "max interval 0 turns backoff off", mutate: func(c *Config) { c.MaxInterval = 0 }},
		{
			name:   "all problems reported at once",
			mutate: func(c *Config) { *c = Config{} },
			wantErr: []string{
				"global.health_check.interval", "global.health_check.timeout",
				"global.health_check.retries", "rise",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	want := Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2, MaxInterval: time.Minute}
	if got := DefaultConfig(); got != want {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
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
