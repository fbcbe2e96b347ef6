// Package ui is the operator's dashboard, served by the admin API under /ui/: one HTML page,
// a script and a style sheet embedded in the binary, so it needs no build step beyond
// go build and no network beyond the admin listener. The script polls the admin API every
// two seconds (a peer's view through /admin/peers/NODE/) and drives the drain endpoints.
//
// The package only serves the files with a strict Content-Security-Policy; authentication
// and cross-origin checks are the admin server's, which mounts Handler behind them.
package ui
