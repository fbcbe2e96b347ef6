package h1client

import "context"

// afterFuncer is a context that runs functions at its end itself, as the fast server's
// request context does, more cheaply than package context can for a context it does not know.
type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// AfterFunc is context.AfterFunc, through ctx's own AfterFunc method when it has one:
// package context would register f as a child context, which takes a map in the parent and
// three allocations, or look for the method only on ctx's direct parent. A context that only
// adds values over one with the method may have the method too, delegating to this function
// with its parent (the proxy's request state does).
func AfterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(afterFuncer); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}
