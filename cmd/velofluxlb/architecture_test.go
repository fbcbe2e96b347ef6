package main

import (
	"errors"
	"go/build"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/veloflux/veloflux"

// TestArchitectureDocMatchesPackages holds the package map of docs/architecture.md to the
// code: every package of the module is listed with a job, every listed path is a package, and
// each package's VeloFlux imports (test files aside) are exactly those its import line names.
func TestArchitectureDocMatchesPackages(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	actual := modulePackages(t, root)
	if len(actual) < 30 {
		t.Fatalf("found %d packages under %s, want the whole module", len(actual), root)
	}

	listed := map[string]bool{}
	for _, line := range strings.Split(codeBlockAfter(t, string(doc), "<!-- package-map -->"), "\n") {
		if line == "" || strings.HasPrefix(line, " ") {
			continue // a job's continuation line
		}
		path, job, _ := strings.Cut(line, " ")
		if strings.TrimSpace(job) == "" {
			t.Errorf("docs/architecture.md lists %s without its job", path)
		}
		listed[path] = true
	}
	allowed := map[string][]string{}
	arrow := regexp.MustCompile(`^(.+) ──> (.+)$`)
	for _, line := range strings.Split(codeBlockAfter(t, string(doc), "<!-- imports -->"), "\n") {
		if line == "" {
			continue
		}
		m := arrow.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("import line %q is not \"pkg, pkg ──> dep, dep\" or \"... ──> (none)\"", line)
			continue
		}
		deps := []string{}
		if m[2] != "(none)" {
			deps = strings.Split(m[2], ", ")
		}
		for _, p := range strings.Split(m[1], ", ") {
			if _, dup := allowed[p]; dup {
				t.Errorf("%s has two import lines", p)
			}
			allowed[p] = deps
		}
	}

	for _, p := range slices.Sorted(maps.Keys(actual)) {
		if !listed[p] {
			t.Errorf("package %s is not in the package map of docs/architecture.md", p)
		}
		want, ok := allowed[p]
		if !ok {
			t.Errorf("package %s has no import line in docs/architecture.md (imports: %s)", p, orNone(actual[p]))
			continue
		}
		slices.Sort(want)
		if !slices.Equal(actual[p], want) {
			t.Errorf("%s imports %s; docs/architecture.md says %s", p, orNone(actual[p]), orNone(want))
		}
	}
	for p := range listed {
		if _, ok := actual[p]; !ok {
			t.Errorf("docs/architecture.md lists %s, which is not a package of the module", p)
		}
	}
	for p := range allowed {
		if _, ok := actual[p]; !ok {
			t.Errorf("docs/architecture.md has an import line for %s, which is not a package of the module", p)
		}
	}
}

// modulePackages maps every package directory of the module under root (other modules,
// testdata and hidden folders aside) to its sorted non-test imports of module packages.
func modulePackages(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // its own module
			}
		}
		pkg, err := build.Default.ImportDir(path, 0)
		if err != nil {
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				return nil
			}
			// A folder whose files all need a build tag (integration) is a package too.
			if pkg == nil || (len(pkg.GoFiles) == 0 && len(pkg.IgnoredGoFiles) == 0) {
				return err
			}
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		var deps []string
		for _, imp := range pkg.Imports {
			if dep, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				deps = append(deps, dep)
			}
		}
		slices.Sort(deps)
		out[rel] = deps
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// codeBlockAfter returns the fenced block that follows marker in doc.
func codeBlockAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, marker+"\n```\n")
	if !ok {
		t.Fatalf("docs/architecture.md has no code block after %s", marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("the block after %s does not end", marker)
	}
	return block
}

func orNone(deps []string) string {
	if len(deps) == 0 {
		return "(none)"
	}
	return strings.Join(deps, ", ")
}
