package consulkv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(holderEnv); addr != "" {
		os.Exit(runHolder(addr))
	}
	goleak.VerifyTestMain(m)
}

func newStorage(t *testing.T, agent *consultest.Agent, prefix string) *Storage {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: agent.HTTPAddr})
	if err != nil {
		t.Fatal(err)
	}
	// A dev agent registers its own node a moment after it elects itself leader, and sessions
	// need that registration.
	testutil.Eventually(t, "the agent's node registered (sessions possible)", func() bool {
		id, _, err := client.Session().Create(&api.SessionEntry{TTL: "10s"}, nil)
		if err != nil {
			return false
		}
		_, _ = client.Session().Destroy(id, nil)
		return true
	})
	cfg := DefaultConfig()
	cfg.Prefix = prefix
	s, err := New(client, cfg, (&testutil.LogBuffer{}).Logger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorageValues(t *testing.T) {
	agent := consultest.Start(t, "")
	s := newStorage(t, agent, "veloflux/acme")
	ctx := t.Context()
	const cert = "certificates/acme.example-directory/example.com/example.com.crt"
	const key = "certificates/acme.example-directory/example.com/example.com.key"
	before := time.Now()
	for k, v := range map[string]string{cert: "CERT", key: "KEY", "certificates/acme.example-directory/example.com2/x": "other", "acme/account.json": "{}"} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("load", func(t *testing.T) {
		got, err := s.Load(ctx, cert)
		if err != nil || string(got) != "CERT" {
			t.Fatalf("Load = %q, %v; want CERT", got, err)
		}
		if _, err := s.Load(ctx, "certificates/none"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing key = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("exists", func(t *testing.T) {
		for k, want := range map[string]bool{cert: true, "certificates/acme.example-directory": true, "certificates/acme.example-directory/example": false, "nothing": false} {
			if got := s.Exists(ctx, k); got != want {
				t.Errorf("Exists(%q) = %v, want %v", k, got, want)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		got, err := s.List(ctx, "certificates/acme.example-directory", false)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"certificates/acme.example-directory/example.com", "certificates/acme.example-directory/example.com2"}
		if !slices.Equal(got, want) {
			t.Errorf("List = %q, want %q", got, want)
		}
		got, err = s.List(ctx, "certificates", true)
		if err != nil {
			t.Fatal(err)
		}
		want = []string{cert, key, "certificates/acme.example-directory/example.com2/x"}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("recursive List = %q, want %q", got, want)
		}
		if _, err := s.List(ctx, "nothing", false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List of a missing folder = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("stat", func(t *testing.T) {
		fi, err := s.Stat(ctx, cert)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsTerminal || fi.Size != 4 || fi.Modified.Before(before.Add(-time.Second)) || fi.Modified.After(time.Now()) {
			t.Errorf("Stat = %+v, want a terminal key of 4 bytes written during the test", fi)
		}
		fi, err = s.Stat(ctx, "certificates/acme.example-directory/example.com")
		if err != nil || fi.IsTerminal {
			t.Errorf("Stat of a folder = %+v, %v; want a non-terminal key", fi, err)
		}
		if _, err := s.Stat(ctx, "nothing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing key = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("prefix isolates", func(t *testing.T) {
		other := newStorage(t, agent, "other/acme")
		if other.Exists(ctx, cert) {
			t.Error("a storage under another prefix sees the key")
		}
	})
	t.Run("delete folder spares its neighbour", func(t *testing.T) {
		if err := s.Delete(ctx, "certificates/acme.example-directory/example.com"); err != nil {
			t.Fatal(err)
		}
		if s.Exists(ctx, cert) || s.Exists(ctx, key) {
			t.Error("keys under the deleted folder remain")
		}
		if !s.Exists(ctx, "certificates/acme.example-directory/example.com2/x") {
			t.Error("Delete of example.com removed example.com2")
		}
		if err := s.Delete(ctx, "certificates/never-there"); err != nil {
			t.Errorf("Delete of a missing key = %v, want nil", err)
		}
	})
}

// TestLockExcludes: while one node holds a lock, another's Lock waits, and gets it when the
// first unlocks; a wait ends with its context.
func TestLockExcludes(t *testing.T) {
	agent := consultest.Start(t, "")
	a, b := newStorage(t, agent, "veloflux/acme"), newStorage(t, agent, "veloflux/acme")
	ctx := t.Context()
	if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_example.com") }()

	// b is waiting once its blocking query is parked on the lock key; an unrelated lock is free.
	if err := b.Lock(ctx, "issue_cert_other.example"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_other.example"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		t.Fatalf("second node took a held lock: %v", err)
	default:
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.Receive(t, got, "the second node's lock after the first unlocked"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err == nil {
		t.Error("Unlock of a lock this node does not hold succeeded")
	}

	// b holds it now: a's wait ends when its context does.
	short, cancel := context.WithCancel(ctx)
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.Lock(short, "issue_cert_example.com") }()
	cancel()
	if err := testutil.Receive(t, waitErr, "a cancelled lock wait"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock = %v, want context.Canceled", err)
	}
	if err := b.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
}

// holderEnv, when set to a Consul address, makes the test binary a lock holder: it takes the
// lock holderLock, says "locked" on stdout, and holds it until it is killed.
const (
	holderEnv  = "CONSULKV_TEST_HOLDER"
	holderLock = "issue_cert_example.com"
)

func runHolder(addr string) int {
	client, err := api.NewClient(&api.Config{Address: addr})
	if err == nil {
		var s *Storage
		if s, err = New(client, DefaultConfig(), nil); err == nil {
			err = s.Lock(context.Background(), holderLock)
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	select {}
}

// takeoverAllowance is what the bound on a takeover allows beyond the lock TTL: Consul's
// session timer firing and the waiter's blocking query returning and acquiring, on a busy
// machine. The waiter is woken by the lock key's deletion; it does not poll.
const takeoverAllowance = time.Second

// TestKilledHolderLosesLock: a node holding a lock keeps it past the lock TTL by renewing its
// session; once its process is killed, another node takes the lock within the lock TTL.
func TestKilledHolderLosesLock(t *testing.T) {
	agent := consultest.Start(t, "")
	s := newStorage(t, agent, "veloflux/acme")
	ttl := s.cfg.LockTTL

	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holderEnv+"="+agent.HTTPAddr)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = holder.Wait()
		close(exited)
	}()
	if line := testutil.Receive(t, lines, "the holder's lock"); line != "locked" {
		t.Fatalf("holder said %q, want locked", line)
	}

	// The session is what Consul enforces: half the lock TTL, and a lock-delay that is not
	// Consul's default 15 s, which would be added to every takeover.
	entries, _, err := s.client.Session().List(nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("sessions = %v, %v; want the holder's", entries, err)
	}
	if e := entries[0]; e.TTL != (ttl/2).String() || e.LockDelay != lockDelay || e.Behavior != api.SessionBehaviorDelete {
		t.Errorf("holder's session: TTL %s, lock-delay %v, behavior %s; want %s, %v, delete", e.TTL, e.LockDelay, e.Behavior, ttl/2, lockDelay)
	}

	// Alive, the holder keeps the lock past the TTL: a session it did not renew would be
	// gone by then.
	alive, cancel := context.WithTimeout(t.Context(), ttl+takeoverAllowance)
	defer cancel()
	if err := s.Lock(alive, holderLock); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while the holder lives = %v, want it to wait until its deadline", err)
	}

	// Killed, its renewals stop at once; the bound runs from here.
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	killed := time.Now()
	if err := s.Lock(t.Context(), holderLock); err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	t.Logf("lock taken over %v after its holder was killed (lock TTL %v, session TTL %v)", took.Round(10*time.Millisecond), ttl, ttl/2)
	if took > ttl+takeoverAllowance {
		t.Errorf("lock taken over %v after its holder was killed, want at most the lock TTL %v (+%v)", took, ttl, takeoverAllowance)
	}
	if err := s.Unlock(t.Context(), holderLock); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"empty prefix", func(c *Config) { c.Prefix = "" }, false},
		{"leading slash", func(c *Config) { c.Prefix = "/veloflux" }, false},
		{"ttl whose session would be below Consul's minimum", func(c *Config) { c.LockTTL = 19 * time.Second }, false},
		{"ttl of the shortest session", func(c *Config) { c.LockTTL = 20 * time.Second }, true},
		{"ttl whose session would be above Consul's maximum", func(c *Config) { c.LockTTL = 49 * time.Hour }, false},
		{"prefix with a space", func(c *Config) { c.Prefix = "velo flux" }, false},
		{"no lock wait", func(c *Config) { c.LockWait = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
