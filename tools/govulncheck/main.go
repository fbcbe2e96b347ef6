// Command govulncheck runs golang.org/x/vuln's govulncheck, at the version this module pins,
// and judges its findings itself. Like govulncheck it fails on a vulnerability that the code
// calls, but only in a module the code requires; one in the standard library is printed as a
// warning unless -stdlib=fail. Those are fixed by a newer Go, and the Go on VeloFlux's
// machines and CI is the one they come with (GOTOOLCHAIN=local), which no go.mod here can
// move: failing on them would stop every change until the machines get a newer Go.
//
// It is its own module so the product's go.mod never sees the tool's dependencies. `make lint`
// builds it into $HOME/.cache/veloflux and runs it against an offline copy of the Go
// vulnerability database (see tools/vulndb).
//
//	govulncheck [-stdlib warn|fail] -db URL [packages]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"golang.org/x/vuln/scan"
)

func main() {
	stdlib := flag.String("stdlib", "warn", "what a called vulnerability in the standard library does: warn or fail")
	db := flag.String("db", "", "vulnerability database URL, as govulncheck's -db (required)")
	flag.Parse()
	if (*stdlib != "warn" && *stdlib != "fail") || *db == "" {
		flag.Usage()
		os.Exit(2)
	}
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}

	if err := checkDB(*db); err != nil {
		fmt.Fprintln(os.Stderr, "govulncheck:", err)
		os.Exit(2)
	}
	var out bytes.Buffer
	cmd := scan.Command(context.Background(), append([]string{"-db", *db, "-format", "json"}, patterns...)...)
	cmd.Stdout = &out
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "govulncheck:", err)
		os.Exit(2)
	}
	r, err := read(&out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "govulncheck: reading its JSON output:", err)
		os.Exit(2)
	}
	if !r.report(os.Stdout, *stdlib == "fail") {
		os.Exit(3) // as govulncheck when the code calls a vulnerability
	}
}

// checkDB refuses a local database that lists no vulnerable module: govulncheck takes any
// directory for a database of loose OSV files, and an empty one would pass every scan.
func checkDB(db string) error {
	u, err := url.Parse(db)
	if err != nil || u.Scheme != "file" {
		return err
	}
	b, err := os.ReadFile(filepath.Join(filepath.FromSlash(u.Path), "index", "modules.json"))
	if err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	var modules []json.RawMessage
	if err := json.Unmarshal(b, &modules); err != nil {
		return fmt.Errorf("database %s: index/modules.json: %w", db, err)
	}
	if len(modules) == 0 {
		return fmt.Errorf("database %s lists no module", db)
	}
	return nil
}

// The parts of govulncheck's JSON messages used here (x/vuln's internal/govulncheck).
type message struct {
	Config *struct {
		DB        string `json:"db"`
		GoVersion string `json:"go_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *finding `json:"finding"`
}

// finding is one place a vulnerability reaches the code. Trace runs from the vulnerable
// symbol (or package, or module, when the scan found no more) to the code's own call.
type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename     string `json:"filename"`
		Line, Column int
	} `json:"position"`
}

// result is a scan's findings, grouped by vulnerability.
type result struct {
	seen          bool // the config message, which comes first
	db, goVersion string
	summary       map[string]string     // OSV id: summary
	called        map[string][]*finding // OSV id: the places the code calls it
	uncalled      map[string]bool       // OSV ids in imported or required code, not called
}

func read(r io.Reader) (*result, error) {
	res := &result{summary: map[string]string{}, called: map[string][]*finding{}, uncalled: map[string]bool{}}
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		switch {
		case m.Config != nil:
			res.seen, res.db, res.goVersion = true, m.Config.DB, m.Config.GoVersion
		case m.OSV != nil:
			res.summary[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			if m.Finding.Trace[0].Function != "" {
				res.called[m.Finding.OSV] = append(res.called[m.Finding.OSV], m.Finding)
			} else {
				res.uncalled[m.Finding.OSV] = true
			}
		}
	}
	if !res.seen {
		return nil, errors.New("no config message")
	}
	return res, nil
}

// report prints the called vulnerabilities, those that fail the check first, and reports
// whether the check passed.
func (r *result) report(w io.Writer, failStdlib bool) bool {
	fmt.Fprintf(w, "govulncheck %s, %s, database %s\n", vulnVersion(), r.goVersion, r.db)
	var failing, warning []string
	for id, fs := range r.called {
		if goRelease(fs[0].Trace[0].Module) && !failStdlib {
			warning = append(warning, id)
		} else {
			failing = append(failing, id)
		}
	}
	sort.Strings(failing)
	sort.Strings(warning)
	for _, id := range failing {
		r.print(w, "FAIL", id)
	}
	for _, id := range warning {
		r.print(w, "WARNING", id)
	}
	for id := range r.called {
		delete(r.uncalled, id)
	}
	if len(warning) > 0 {
		fmt.Fprintf(w, "WARNING: %d vulnerabilities in Go %s that the code calls; they need a newer Go on the machines\n",
			len(warning), strings.TrimPrefix(r.goVersion, "go"))
	}
	if len(r.uncalled) > 0 {
		fmt.Fprintf(w, "%d more in packages or modules the code uses but does not call into (govulncheck -show verbose lists them)\n", len(r.uncalled))
	}
	if len(failing) > 0 {
		fmt.Fprintf(w, "FAIL: %d vulnerabilities that the code calls\n", len(failing))
		return false
	}
	fmt.Fprintln(w, "no vulnerability that the code calls in a required module")
	return true
}

// vulnVersion is the version of golang.org/x/vuln built in; the scan reports none of its own
// when it runs inside another command.
func vulnVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "golang.org/x/vuln" {
				return m.Version
			}
		}
	}
	return "(unknown version)"
}

// goRelease reports whether a vulnerability in module is fixed by a Go release.
func goRelease(module string) bool { return module == "stdlib" || module == "toolchain" }

func (r *result) print(w io.Writer, verdict, id string) {
	fs := r.called[id]
	v := fs[0].Trace[0]
	fixed := "no fix yet"
	if fs[0].FixedVersion != "" {
		fixed = "fixed in " + fs[0].FixedVersion
	}
	fmt.Fprintf(w, "%s %s: %s\n  %s@%s, %s\n", verdict, id, r.summary[id], v.Module, v.Version, fixed)
	// The code's own call is the last frame of each trace; one is enough to find the rest.
	seen := map[string]bool{}
	var sites []string
	for _, f := range fs {
		if s := site(f); !seen[s] {
			seen[s] = true
			sites = append(sites, s)
		}
	}
	sort.Strings(sites)
	fmt.Fprintf(w, "  called at %s", sites[0])
	if len(sites) > 1 {
		fmt.Fprintf(w, " and %d more places", len(sites)-1)
	}
	fmt.Fprintln(w)
}

func site(f *finding) string {
	last, first := f.Trace[len(f.Trace)-1], f.Trace[0]
	sym := first.Package + "." + first.Function
	if first.Receiver != "" {
		sym = first.Package + "." + strings.TrimPrefix(first.Receiver, "*") + "." + first.Function
	}
	if last.Position == nil {
		return sym
	}
	return fmt.Sprintf("%s:%d:%d (reaches %s)", last.Position.Filename, last.Position.Line, last.Position.Column, sym)
}
