package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Messages as govulncheck -format json writes them, cut to the fields read here.
const (
	config = `{"config":{"protocol_version":"v1.0.0","scanner_name":"govulncheck","db":"file:///db","go_version":"go1.26.8"}}`
	osvStd = `{"osv":{"id":"GO-1-1","summary":"in net/http"}}`
	osvMod = `{"osv":{"id":"GO-1-2","summary":"in a module"}}`
	// calledStd and calledMod reach the vulnerable function from the code.
	calledStd = `{"finding":{"osv":"GO-1-1","fixed_version":"v1.26.9","trace":[
		{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"},
		{"module":"example.com/m","package":"example.com/m/a","function":"F","position":{"filename":"a/a.go","line":3,"column":7}}]}}`
	calledMod = `{"finding":{"osv":"GO-1-2","fixed_version":"v2.0.1","trace":[
		{"module":"example.com/dep","version":"v2.0.0","package":"example.com/dep","function":"Do","receiver":"*T"},
		{"module":"example.com/m","package":"example.com/m/b","function":"G","position":{"filename":"b/b.go","line":9,"column":2}}]}}`
	// importedMod is the same vulnerability found at package level only: imported, not called.
	importedMod = `{"finding":{"osv":"GO-1-2","trace":[{"module":"example.com/dep","version":"v2.0.0","package":"example.com/dep"}]}}`
)

func TestReport(t *testing.T) {
	tests := []struct {
		name       string
		messages   []string
		failStdlib bool
		pass       bool
		want       []string // lines or parts of lines in the report
	}{
		{
			name:     "nothing found",
			messages: []string{config},
			pass:     true,
			want:     []string{"database file:///db", "no vulnerability that the code calls"},
		},
		{
			name:     "called in the standard library warns",
			messages: []string{config, osvStd, calledStd},
			pass:     true,
			want: []string{
				"WARNING GO-1-1: in net/http", "stdlib@v1.26.8, fixed in v1.26.9",
				"called at a/a.go:3:7 (reaches net/http.Get)", "1 vulnerabilities in Go 1.26.8",
			},
		},
		{
			name:       "called in the standard library fails with -stdlib=fail",
			messages:   []string{config, osvStd, calledStd},
			failStdlib: true,
			want:       []string{"FAIL GO-1-1", "FAIL: 1 vulnerabilities"},
		},
		{
			name:     "called in a required module fails",
			messages: []string{config, osvStd, osvMod, importedMod, calledMod, calledStd},
			want: []string{
				"FAIL GO-1-2: in a module", "example.com/dep@v2.0.0, fixed in v2.0.1",
				"called at b/b.go:9:2 (reaches example.com/dep.T.Do)", "WARNING GO-1-1", "FAIL: 1 vulnerabilities",
			},
		},
		{
			name:     "imported but not called passes",
			messages: []string{config, osvMod, importedMod},
			pass:     true,
			want:     []string{"1 more in packages or modules the code uses but does not call"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := read(strings.NewReader(strings.Join(tt.messages, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if pass := r.report(&out, tt.failStdlib); pass != tt.pass {
				t.Errorf("passed %v, want %v", pass, tt.pass)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestReadNeedsConfig(t *testing.T) {
	if _, err := read(strings.NewReader(osvStd)); err == nil {
		t.Error("output without a config message was accepted")
	}
	if _, err := read(strings.NewReader(config + "\n{")); err == nil {
		t.Error("output cut short was accepted")
	}
}

func TestCheckDB(t *testing.T) {
	tests := []struct {
		name    string
		modules string // index/modules.json; "" for none
		ok      bool
	}{
		{"an indexed database", `[{"path":"example.com/dep","vulns":[{"id":"GO-1-2"}]}]`, true},
		{"an index without modules", `[]`, false},
		{"a directory without an index, as loose OSV files", "", false},
		{"an index that is not JSON", `[{`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.modules != "" {
				if err := os.MkdirAll(filepath.Join(dir, "index"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "index", "modules.json"), []byte(tt.modules), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := checkDB("file://" + filepath.ToSlash(dir)); (err == nil) != tt.ok {
				t.Errorf("checkDB: %v, want ok %v", err, tt.ok)
			}
		})
	}
}
