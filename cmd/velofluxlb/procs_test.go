package main

import "testing"

func TestProcsFor(t *testing.T) {
	for _, tt := range []struct {
		name    string
		environ []string
		current int
		want    int
	}{
		{"one CPU: two processors", []string{"HOME=/root"}, 1, 2},
		{"two CPUs: the runtime's choice", nil, 2, 0},
		{"many CPUs: the runtime's choice", nil, 16, 0},
		{"GOMAXPROCS set: the operator's choice", []string{"GOMAXPROCS=1"}, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := procsFor(tt.environ, tt.current); got != tt.want {
				t.Errorf("procsFor(%q, %d) = %d, want %d", tt.environ, tt.current, got, tt.want)
			}
		})
	}
}
