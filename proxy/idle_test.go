package proxy

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// residentBytes is the process's resident size (VmRSS).
func residentBytes(t testing.TB) uint64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kib << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkIdleConnMemory reports what an idle keep-alive client connection of the fast-path
// server holds: b.N connections each get one answer and then wait. heap-B/conn is the live
// heap after a collection against the heap before they opened; rss-B/conn the process's
// resident size once freed memory went back to the system, as the server's return after a
// burst leaves it (h1fast's ReturnMemoryEvery), against the resident size before, which adds
// the runtime's poll descriptors and the heap's fragmentation. The clients are blocking sockets outside the Go
// runtime, so nothing on their side is counted; what the kernel keeps per socket is not the
// proxy's either. bench/idle.sh measures the resident size of a freshly started process.
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
	debug.FreeOSMemory()
	rssBefore := residentBytes(b)
	b.ResetTimer()
	for range b.N {
		open()
	}
	b.StopTimer()
	after := heap()
	b.ReportMetric(float64(after-before)/float64(b.N), "heap-B/conn")
	// What the server's return of a burst's freed memory (ReturnMemoryEvery) leaves resident;
	// whether the server makes it depends on how much the burst left since the last
	// collection, which the collections above have taken.
	debug.FreeOSMemory()
	b.ReportMetric(float64(int64(residentBytes(b))-int64(rssBefore))/float64(b.N), "rss-B/conn")
	b.ReportMetric(0, "ns/op")
}
