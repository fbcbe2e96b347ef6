package consulkv

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// Config says where in Consul the storage lives and how its locks behave. Its keys sit in
// global.tls beside the other ACME keys.
type Config struct {
	// Prefix is the KV folder, without leading or trailing "/", spaces or control characters.
	// Default "veloflux/acme".
	Prefix string `koanf:"storage_prefix"`
	// LockTTL bounds how long a lock outlives its holder: once the holder stops renewing (its
	// process died, or it lost Consul), the lock is free at most LockTTL later. The lock's
	// Consul session gets half of it, because Consul invalidates a session up to twice its
	// TTL after the last renewal. Default 20s; 20s (Consul's 10s minimum session TTL, doubled)
	// to 48h.
	LockTTL time.Duration `koanf:"lock_ttl"`
	// LockWait bounds one blocking query while waiting for a lock, so that a wait also
	// notices a lock deleted without an index change it could see. Default 5s. Not a key.
	LockWait time.Duration `koanf:"-"`
}

// Consul's bounds on a session TTL.
const (
	minSessionTTL = 10 * time.Second
	maxSessionTTL = 24 * time.Hour
)

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{Prefix: "veloflux/acme", LockTTL: 2 * minSessionTTL, LockWait: 5 * time.Second}
}

// Validate returns every problem at once, with the keys' names as paths.
func (c Config) Validate() error {
	var e fielderr.Errors
	switch p := c.Prefix; {
	case p == "":
		e.Add("storage_prefix", "required with storage consul")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		e.Add("storage_prefix", "must not start or end with \"/\", got %s", fielderr.Quote(p))
	case strings.IndexFunc(p, isSpaceOrControl) >= 0:
		e.Add("storage_prefix", "must not contain spaces or control characters, got %s", fielderr.Quote(p))
	}
	if c.LockTTL < 2*minSessionTTL || c.LockTTL > 2*maxSessionTTL {
		e.Add("lock_ttl", "must be 20s to 48h (the lock's Consul session gets half, and Consul accepts 10s to 24h), got %s", c.LockTTL)
	}
	e.Positive("lock_wait", c.LockWait)
	return e.Err()
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// sessionTTL is the TTL of a lock's session: Consul invalidates a session that is not renewed
// between its TTL and twice its TTL after the last renewal, so half of LockTTL keeps the
// promise that a dead holder's lock is gone within LockTTL.
func (c Config) sessionTTL() time.Duration { return c.LockTTL / 2 }

// lockDelay is the lock-delay of lock sessions; see the package comment. It must not be 0,
// which Consul reads as its default of 15 s.
const lockDelay = time.Millisecond

// Storage is a certmagic.Storage on Consul KV. It is safe for concurrent use.
type Storage struct {
	client *api.Client
	cfg    Config
	log    *slog.Logger

	mu    sync.Mutex
	locks map[string]*heldLock // by lock name, the locks this process holds
}

var _ certmagic.Storage = (*Storage)(nil)

// heldLock is a lock this process holds: its session and the renewal to stop.
type heldLock struct {
	session string
	stop    chan struct{} // closing it stops the renewal, which then destroys the session
	done    chan struct{} // closed when the renewal has ended
}

// New returns a Storage using client. Nothing is contacted until it is used.
func New(client *api.Client, cfg Config, log *slog.Logger) (*Storage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consulkv: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Storage{client: client, cfg: cfg, log: log, locks: make(map[string]*heldLock)}, nil
}

// kvKey is the Consul key of a certmagic key.
func (s *Storage) kvKey(key string) string {
	key = strings.Trim(path.Clean("/"+key), "/")
	if key == "" {
		return s.cfg.Prefix
	}
	return s.cfg.Prefix + "/" + key
}

// certmagicKey is the certmagic key of a Consul key under the prefix.
func (s *Storage) certmagicKey(kvKey string) string {
	return strings.TrimPrefix(strings.TrimPrefix(kvKey, s.cfg.Prefix), "/")
}

func (s *Storage) query(ctx context.Context) *api.QueryOptions {
	// Consistent reads: a node that just took a lock must see what the previous holder wrote.
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
}

func (s *Storage) write(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	p := &api.KVPair{Key: s.kvKey(key), Value: value, Flags: uint64(time.Now().UnixNano())}
	if _, err := s.client.KV().Put(p, s.write(ctx)); err != nil {
		return fmt.Errorf("consulkv: store %s: %w", p.Key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist when there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k := s.kvKey(key)
	p, _, err := s.client.KV().Get(k, s.query(ctx))
	if err != nil {
		return nil, fmt.Errorf("consulkv: load %s: %w", k, err)
	}
	if p == nil {
		return nil, fmt.Errorf("consulkv: load %s: %w", k, fs.ErrNotExist)
	}
	return p.Value, nil
}

// Delete removes key and, when it is a folder, every key under it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k := s.kvKey(key)
	kv := s.client.KV()
	if _, err := kv.Delete(k, s.write(ctx)); err != nil {
		return fmt.Errorf("consulkv: delete %s: %w", k, err)
	}
	// The folder only: DeleteTree(k) would also take "k2" beside "k".
	if _, err := kv.DeleteTree(k+"/", s.write(ctx)); err != nil {
		return fmt.Errorf("consulkv: delete %s/: %w", k, err)
	}
	return nil
}

// Exists reports whether key is a value or a folder of values.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k := s.kvKey(key)
	p, _, err := s.client.KV().Get(k, s.query(ctx))
	if err == nil && p != nil {
		return true
	}
	keys, _, err := s.client.KV().Keys(k+"/", "", s.query(ctx))
	return err == nil && len(keys) > 0
}

// List returns the keys under dir: with recursive every key of the tree, else only the
// entries directly in it (values and folders).
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	k := s.kvKey(dir)
	sep := "/"
	if recursive {
		sep = ""
	}
	keys, _, err := s.client.KV().Keys(k+"/", sep, s.query(ctx))
	if err != nil {
		return nil, fmt.Errorf("consulkv: list %s: %w", k, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("consulkv: list %s: %w", k, fs.ErrNotExist)
	}
	out := make([]string, 0, len(keys))
	for _, key := range keys {
		out = append(out, s.certmagicKey(strings.TrimSuffix(key, "/")))
	}
	return out, nil
}

// Stat describes key: a value with its size and the time it was stored, or a folder.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k := s.kvKey(key)
	p, _, err := s.client.KV().Get(k, s.query(ctx))
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consulkv: stat %s: %w", k, err)
	}
	if p != nil {
		return certmagic.KeyInfo{
			Key: key, Size: int64(len(p.Value)), IsTerminal: true,
			Modified: time.Unix(0, int64(p.Flags)),
		}, nil
	}
	if s.Exists(ctx, key) {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("consulkv: stat %s: %w", k, fs.ErrNotExist)
}

// lockKey is the Consul key of the lock called name.
func (s *Storage) lockKey(name string) string { return s.kvKey("locks/" + name + ".lock") }

// Lock takes the lock called name, waiting while another holds it, until ctx ends.
func (s *Storage) Lock(ctx context.Context, name string) error {
	sessions := s.client.Session()
	id, _, err := sessions.Create(&api.SessionEntry{
		Name:      "veloflux acme " + name,
		TTL:       s.cfg.sessionTTL().String(),
		LockDelay: lockDelay,
		Behavior:  api.SessionBehaviorDelete,
	}, s.write(ctx))
	if err != nil {
		return fmt.Errorf("consulkv: lock %s: create session: %w", name, err)
	}
	l := &heldLock{session: id, stop: make(chan struct{}), done: make(chan struct{})}
	go s.renew(name, l)
	if err := s.acquire(ctx, name, id); err != nil {
		close(l.stop)
		<-l.done
		return err
	}
	s.mu.Lock()
	s.locks[name] = l
	s.mu.Unlock()
	return nil
}

// renew keeps l's session alive until l.stop closes, then destroys it. It renews every half
// session TTL, so a holder misses three renewals in a row before Consul may drop its lock, and
// after a failed renewal it tries again every second.
func (s *Storage) renew(name string, l *heldLock) {
	defer close(l.done)
	sessions := s.client.Session()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel() // a renewal in flight ends with the lock
		case <-ctx.Done():
		}
	}()
	every := s.cfg.sessionTTL() / 2
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			// A background context: the destroy must be sent although the lock's context ended.
			dctx, dcancel := context.WithTimeout(context.Background(), s.cfg.sessionTTL())
			_, err := sessions.Destroy(l.session, s.write(dctx))
			dcancel()
			if err != nil {
				// The lock goes when Consul drops the session, within LockTTL.
				s.log.Warn("ACME lock session not destroyed; Consul drops it within the lock TTL", "lock", name, "error", err)
			}
			return
		case <-t.C:
		}
		entry, _, err := sessions.Renew(l.session, s.write(ctx))
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("ACME lock session renewal failed; retrying", "lock", name, "error", err)
			}
			t.Reset(time.Second)
		case entry == nil:
			s.log.Warn("ACME lock session ended while held", "lock", name)
			<-l.stop
			return
		default:
			t.Reset(every)
		}
	}
}

// acquire loops until session id holds the lock called name.
func (s *Storage) acquire(ctx context.Context, name, id string) error {
	kv := s.client.KV()
	key := s.lockKey(name)
	var index uint64
	for {
		ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte(id), Session: id}, s.write(ctx))
		if err != nil {
			return fmt.Errorf("consulkv: lock %s: %w", name, err)
		}
		if ok {
			return nil
		}
		// Held by another session (or in its lock-delay): wait for the key to change.
		q := s.query(ctx)
		q.WaitIndex, q.WaitTime = index, s.cfg.LockWait
		_, meta, err := kv.Get(key, q)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("consulkv: lock %s: %w", name, ctx.Err())
			}
			return fmt.Errorf("consulkv: lock %s: %w", name, err)
		}
		if meta.LastIndex == index {
			continue // the wait timed out; try again
		}
		index = meta.LastIndex
		if index == 0 {
			// An index that never moves would turn the blocking query into a busy loop.
			select {
			case <-ctx.Done():
				return fmt.Errorf("consulkv: lock %s: %w", name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// Unlock releases the lock called name, which this process must hold.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("consulkv: unlock %s: not held", name)
	}
	_, _, err := s.client.KV().Release(&api.KVPair{Key: s.lockKey(name), Session: l.session}, s.write(ctx))
	// Stopping the renewal destroys the session, and with it (behavior delete) the lock key,
	// which also frees the lock when the release above failed.
	close(l.stop)
	<-l.done
	if err != nil {
		return fmt.Errorf("consulkv: unlock %s: %w", name, err)
	}
	return nil
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "consulkv:" + s.cfg.Prefix }
