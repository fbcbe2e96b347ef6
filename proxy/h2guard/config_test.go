package h2guard

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // parts of the error, one per problem; none for a valid Config
	}{
		{name: "defaults", cfg: DefaultConfig()},
		{name: "zero means defaults", cfg: Config{}},
		{name: "small and large values", cfg: Config{MinStreams: 1, PrematureWindow: time.Hour}},
		{
			name: "every problem at once",
			cfg:  Config{MinStreams: -1, PrematureWindow: -time.Second},
			want: []string{"min_streams: must be >= 0 (0 means 500), got -1", "premature_window: must be >= 0 (0 means 1s), got -1s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid Config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestWrapFillsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want Config
	}{
		{name: "zero", cfg: Config{}, want: DefaultConfig()},
		{name: "negative", cfg: Config{MinStreams: -5, PrematureWindow: -1}, want: DefaultConfig()},
		{name: "set", cfg: Config{MinStreams: 7, PrematureWindow: time.Minute}, want: Config{MinStreams: 7, PrematureWindow: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(&scriptConn{}, tc.cfg, nil, goAwayTimeout)
			got := Config{MinStreams: int(g.minStreams), PrematureWindow: time.Duration(g.window)}
			if got != tc.want {
				t.Errorf("guard uses %+v, want %+v", got, tc.want)
			}
		})
	}
}
