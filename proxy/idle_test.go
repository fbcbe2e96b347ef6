package proxy

import (
	"bytes"
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkIdleConnMemory reports what an idle keep-alive client connection of the fast-path
// server holds in the Go heap: b.N connections each get one answer and then wait, and the
// live heap after a collection is compared with the heap before they opened. The clients are
// blocking sockets outside the Go runtime, so nothing on their side is counted; what the
// kernel keeps per socket is not the proxy's either. bench/run.sh measures the resident size
// of a whole process, garbage collector headroom and the runtime's poll descriptors included.
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 5000x ./proxy/
func BenchmarkIdleConnMemory(b *testing.B) {
	cfg := DefaultConfig()
	cfg.AccessLog = false
	p := newProxy(b, cfg, Options{}, onePoolSnapshot("round_robin", false, member("raw", fixedBackend(b), 1)))
	scfg := testServerConfig()
	scfg.HTTP1FastPath = true
	_, addr, _ := runServer(b, scfg, p)
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	req := []byte("GET /idle HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
	fds := make([]int, 0, b.N)
	b.Cleanup(func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	})
	open := func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		var buf [512]byte
		got := 0
		for {
			n, err := unix.Read(fd, buf[got:])
			if err != nil || n <= 0 {
				b.Fatalf("reading the answer: %d %v", n, err)
			}
			got += n
			if i := bytes.Index(buf[:got], []byte("\r\n\r\n")); i >= 0 && got >= i+4+2 {
				return
			}
		}
	}
	// A first connection warms the pools, the backend connection and the server's goroutines.
	open()
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	b.ResetTimer()
	for range b.N {
		open()
	}
	b.StopTimer()
	after := heap()
	b.ReportMetric(float64(after-before)/float64(b.N), "heap-B/conn")
	b.ReportMetric(0, "ns/op")
}
