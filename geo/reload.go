package geo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fsnotify/fsnotify"
)

// Run follows the database file until ctx ends, then closes it and returns nil; from then on
// every client is unknown. A failure to watch the directory is returned, after closing the
// database all the same. It watches the file's directory rather than the file, because
// updaters (geoipupdate, a Kubernetes volume) replace the file by a rename, which a watch on
// the old file would never see. After events settle, a file whose content changed is opened
// and checked with one lookup before it replaces the one serving; a file that fails is logged
// and counted, and the loaded one keeps serving. The replaced reader is closed once the last
// lookup using it is done, and the address cache starts empty with the new database.
//
// The file must be replaced (write a temporary file, then rename it over the old one), never
// rewritten in place: the loaded database is memory-mapped, so overwriting it changes the
// data under running lookups.
func (l *Locator) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("geo: Run called twice")
	}
	defer l.close()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("geo: watch database directory %s: %w", l.dir, err)
	}
	defer w.Close()
	if err := w.Add(l.dir); err != nil {
		return fmt.Errorf("geo: watch database directory %s: %w", l.dir, err)
	}
	// A replacement between New and the watch would otherwise wait for the next one.
	l.reload()
	l.logger.Debug("watching geo database directory", "dir", l.dir)
	timer := time.NewTimer(l.debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("geo: watch database directory %s: watcher closed", l.dir)
			}
			if l.concerns(ev) {
				timer.Reset(l.debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("geo: watch database directory %s: watcher closed", l.dir)
			}
			// Mostly a queue overflow: events were lost, one of them may have been ours.
			l.logger.Warn("geo database directory watch failed; checking the file", "dir", l.dir, "error", err)
			timer.Reset(l.debounce)
		case <-timer.C:
			l.reload()
		}
	}
}

// concerns tells whether ev may have changed the file. Names starting with ".." are the
// symlinked data directory a Kubernetes ConfigMap or Secret volume swaps on update.
// Attribute changes alone (touch, chmod) cannot change the content.
func (l *Locator) concerns(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Base(ev.Name)
	return name == l.base || strings.HasPrefix(name, "..")
}

// reload replaces the database when the file's content changed and the new file works. It
// runs on Run's goroutine only, which owns fileInfo and fileSum.
func (l *Locator) reload() {
	fi, err := os.Stat(l.path)
	if err != nil {
		l.reject(fmt.Errorf("read database: %w", err))
		return
	}
	if sameFile(fi, l.fileInfo) {
		return
	}
	fi, sum, err := fingerprint(l.path)
	if err != nil {
		l.reject(err)
		return
	}
	if sum == l.fileSum {
		// Same bytes under a new inode or time stamp (an updater that rewrote the same
		// release): nothing to load, and the cache stays warm.
		l.fileInfo = fi
		l.logger.Debug("geo database file unchanged", "path", l.path)
		return
	}
	r, err := openDatabase(l.path)
	if err != nil {
		l.reject(err)
		return
	}
	// Metrics first: whoever sees the new data then also sees them counted.
	md := r.Metadata()
	l.metrics.buildTimestamp.Set(float64(md.BuildEpoch))
	l.metrics.reloadOK.Inc()
	old := l.state.Swap(l.newState(r))
	old.release()
	l.fileInfo, l.fileSum = fi, sum
	l.logger.Info("geo database reloaded", "path", l.path, "type", md.DatabaseType,
		"built", time.Unix(int64(md.BuildEpoch), 0).UTC())
}

func (l *Locator) reject(err error) {
	l.logger.Error("geo database update rejected; the loaded database keeps serving", "path", l.path, "error", err)
	l.metrics.reloadFailed.Inc() // after the log, so that a count seen means a reason logged
}

// close ends serving: lookups in flight finish on the reader, which closes after the last.
func (l *Locator) close() {
	l.state.Swap(l.newState(nil)).release()
}

// sameFile reports whether fi is the file already loaded, untouched since: then its content
// cannot have changed and need not be read again.
func sameFile(fi, loaded os.FileInfo) bool {
	return loaded != nil && os.SameFile(fi, loaded) && fi.Size() == loaded.Size() &&
		fi.ModTime().Equal(loaded.ModTime())
}

// fingerprint identifies the file and its content. xxhash reads a 60 MB City database in a
// few milliseconds; comparing content, not time stamps, skips rewrites of the same release.
func fingerprint(path string) (os.FileInfo, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read database: %w", err) // the error names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("read database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("database %s: not a regular file", path)
	}
	h := xxhash.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, 0, fmt.Errorf("read database %s: %w", path, err)
	}
	return fi, h.Sum64(), nil
}
