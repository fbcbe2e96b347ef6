// Package fielderr is the error type of every configuration check: a problem located by its key
// path. A package's Config.Validate reports paths relative to its own section ("address",
// "register.tags[1]"), and the config package places them under the section's key with Prefix
// ("discovery.consul.address"), so each package states its rules once, in its own terms, and
// the user still reads full key paths.
package fielderr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem, located by its key path ("pools[1].backends[0].address"). A problem
// that comes from an environment variable naming no key has the variable's name as Path.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one check, one per line in Error. Use errors.As to get it
// from an error.
type Errors []FieldError

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns e, or nil when it holds no problem, for a Validate method's return.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Add records a problem at path.
func (e *Errors) Add(path, format string, args ...any) {
	*e = append(*e, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Positive records a problem unless d > 0.
func (e *Errors) Positive(path string, d time.Duration) {
	if d <= 0 {
		e.Add(path, "must be > 0, got %s", d)
	}
}

// Between records a problem unless lo <= n <= hi.
func (e *Errors) Between(path string, n, lo, hi int) {
	if n < lo || n > hi {
		e.Add(path, "must be between %d and %d, got %d", lo, hi, n)
	}
}

// AtLeast records a problem unless n >= lo.
func (e *Errors) AtLeast(path string, n, lo int) {
	if n < lo {
		e.Add(path, "must be >= %d, got %d", lo, n)
	}
}

// OneOf records a problem unless got is one of valid.
func (e *Errors) OneOf(path, got string, valid ...string) {
	for _, s := range valid {
		if got == s {
			return
		}
	}
	e.Add(path, "must be one of %s; got %s", strings.Join(valid, ", "), Quote(got))
}

// Prefix returns the problems of err with each path placed under prefix: Prefix("cluster",
// err) turns "seeds[0]" into "cluster.seeds[0]" and "" into "cluster". An error that is not
// Errors becomes one problem at prefix; nil gives nil.
func Prefix(prefix string, err error) Errors {
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		return Errors{{Path: prefix, Msg: err.Error()}}
	}
	out := make(Errors, len(errs))
	for i, fe := range errs {
		out[i] = FieldError{Path: Join(prefix, fe.Path), Msg: fe.Msg}
	}
	return out
}

// Join appends the relative path rel to path: "cluster" and "seeds[0]" give "cluster.seeds[0]",
// "pools" and "[2].name" give "pools[2].name".
func Join(path, rel string) string {
	switch {
	case path == "":
		return rel
	case rel == "":
		return path
	case rel[0] == '[':
		return path + rel
	default:
		return path + "." + rel
	}
}

// Index is the path of element i of the list at path: "seeds[3]".
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Quote shows user text in messages, shortened so a pasted certificate does not flood them.
func Quote(s string) string {
	const maxShown = 64
	if len(s) > maxShown {
		return strconv.Quote(s[:maxShown]) + "..."
	}
	return strconv.Quote(s)
}
