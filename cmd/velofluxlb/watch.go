package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/veloflux/veloflux/config"
)

// reloadDebounce gathers the burst of events an editor or a config-map update makes into
// one reload.
const reloadDebounce = 250 * time.Millisecond

// watch reloads the configuration on SIGHUP, and when the file's content changes. It watches
// the file's directory rather than the file, so atomic replaces (rename over, or the symlink
// swap of a Kubernetes ConfigMap) are seen too.
func (a *app) watch(ctx context.Context, hup <-chan os.Signal) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file watcher: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(a.path)
	if err := w.Add(dir); err != nil {
		a.log.Warn("not watching the config file; reload with SIGHUP", "dir", dir, "error", err)
	}
	last := fileDigest(a.path)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			a.reload("SIGHUP")
			last = fileDigest(a.path)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if relevant(ev, a.path) {
				debounce = time.After(reloadDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			a.log.Warn("config file watcher", "error", err)
		case <-debounce:
			debounce = nil
			if d := fileDigest(a.path); d != nil && !bytes.Equal(d, last) {
				last = d
				a.reload("file changed")
			}
		}
	}
}

// relevant reports whether ev may have changed the file at path: an event on the file itself,
// or any event in its directory when the file is a symlink (its target is swapped in the
// directory, not written).
func relevant(ev fsnotify.Event, path string) bool {
	if filepath.Clean(ev.Name) == filepath.Clean(path) {
		return true
	}
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

// fileDigest returns a hash of the file's size and content, or nil when it cannot be read
// (for example in the middle of a replace). It reads no more than config.Load would: a file
// over config.MaxFileBytes is hashed by its size and first bytes, enough to see it change, and
// the reload then refuses it without reading it either.
func fileDigest(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	h := sha256.New()
	if fi, err := f.Stat(); err == nil {
		fmt.Fprintf(h, "%d\n", fi.Size())
	}
	if _, err := io.Copy(h, io.LimitReader(f, config.MaxFileBytes+1)); err != nil {
		return nil
	}
	return h.Sum(nil)
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// serveUntil serves srv on ln until ctx ends, then shuts it down.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
