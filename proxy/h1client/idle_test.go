package h1client

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A pooled connection is closed once it has been idle for IdleTimeout, counted from when it
// last went idle: one that carries a request every few seconds lives on, however long, and
// the backend sees it closed only after a quiet IdleTimeout.
func TestIdleTimeoutCountsFromLastUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 10 * time.Second
		var opened, closed atomic.Int64
		tr := New(Options{IdleTimeout: idle})
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			client, server := net.Pipe()
			opened.Add(1)
			go func() {
				defer closed.Add(1)
				br := bufio.NewReader(server)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := server.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
						return
					}
				}
			}()
			return client, nil
		}
		for i := range 6 {
			if resp, body := get(t, tr, "http://backend.test/"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
			time.Sleep(idle * 4 / 10)
		}
		synctest.Wait()
		if o, c := opened.Load(), closed.Load(); o != 1 || c != 0 {
			t.Fatalf("after 6 requests 4 s apart: %d connections opened, %d closed; want 1 open, reused", o, c)
		}
		time.Sleep(idle)
		synctest.Wait()
		if c, n := closed.Load(), tr.IdleConns(); c != 1 || n != 0 {
			t.Fatalf("after %v idle: backend saw %d connections closed, %d still pooled; want it closed", idle*14/10, c, n)
		}
	})
}
