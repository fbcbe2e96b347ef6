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
	want := Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2}
	if got := DefaultConfig(); got != want {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
}

func TestConfigForTarget(t *testing.T) {
	cfg := Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2}
	tests := []struct {
		name   string
		target Target
		want   Config
	}{
		{name: "no overrides", target: Target{}, want: cfg},
		{name: "interval", target: Target{Interval: time.Second}, want: Config{Interval: time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2}},
		{name: "timeout", target: Target{Timeout: time.Second}, want: Config{Interval: 10 * time.Second, Timeout: time.Second, Fall: 3, Rise: 2}},
		{name: "fall", target: Target{Fall: 7}, want: Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 7, Rise: 2}},
		{
			name:   "all",
			target: Target{Interval: 3 * time.Second, Timeout: 2 * time.Second, Fall: 1},
			want:   Config{Interval: 3 * time.Second, Timeout: 2 * time.Second, Fall: 1, Rise: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cfg.forTarget(tt.target); got != tt.want {
				t.Fatalf("forTarget(%+v) = %+v, want %+v", tt.target, got, tt.want)
			}
		})
	}
}
