package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/veloflux/veloflux/proxy/h1client"
)

// BenchmarkLargeBody moves one body per operation through the fast path, client connection
// to backend connection, with the kernel copy (splice) and with the buffer copy, for
// downloads (response bodies) and uploads (request bodies). Client and backend are raw
// sockets in the same process doing the least they can, so the difference between the two
// ways is the proxy's. Besides throughput it reports the process's CPU time (user+system,
// getrusage) per operation and per MiB; wrap runs in flock /tmp/vf/bench.lock on a shared
// machine.
func BenchmarkLargeBody(b *testing.B) {
	for _, size := range []int{128 << 10, 1 << 20, 64 << 20} {
		for _, dir := range []string{"down", "up"} {
			for _, way := range []string{"buffer", "splice"} {
				b.Run(fmt.Sprintf("%s/%s/%s", dir, sizeName(size), way), func(b *testing.B) {
					benchLargeBody(b, size, dir == "up", way == "splice")
				})
			}
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

func benchLargeBody(b *testing.B, size int, up, spliced bool) {
	cfg := DefaultConfig()
	cfg.AccessLog = false
	p := newProxy(b, cfg, Options{Transport: TransportConfig{FastHTTP1: true}}, onePoolSnapshot("round_robin", false, member("raw", bodyBackend(b), 1)))
	p.transports.fast = h1client.New(h1client.Options{NoSplice: !spliced})
	b.Cleanup(p.transports.fast.CloseIdleConnections)
	addr := serveFast(b, p)[len("http://"):]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	chunk := make([]byte, 256<<10)
	var req []byte
	if up {
		req = fmt.Appendf(nil, "POST /up HTTP/1.1\r\nHost: app\r\nContent-Length: %d\r\n\r\n", size)
	} else {
		req = fmt.Appendf(nil, "GET /%d HTTP/1.1\r\nHost: app\r\n\r\n", size)
	}
	trip := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if up {
			for left := size; left > 0; {
				n, err := c.Write(chunk[:min(left, len(chunk))])
				if err != nil {
					b.Fatal(err)
				}
				left -= n
			}
		}
		length := readHeadLength(b, br)
		if !up && length != size || up && length != 0 {
			b.Fatalf("answer with length %d", length)
		}
		for left := length; left > 0; {
			n, err := br.Read(chunk[:min(left, len(chunk))])
			if err != nil {
				b.Fatal(err)
			}
			left -= n
		}
	}
	trip() // connections in place before measuring
	splicedBefore := p.transports.fast.SplicedBytes()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		trip()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := float64(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(cpu/float64(b.N), "cpu-ns/op")
	b.ReportMetric(cpu/float64(b.N)/(float64(size)/(1<<20))/1000, "cpu-us/MiB")
	if s := p.transports.fast.SplicedBytes() - splicedBefore; spliced != (s > 0) {
		b.Fatalf("%d bytes spliced, want splicing %v", s, spliced)
	}
}

// readHeadLength reads a response head and returns its Content-Length.
func readHeadLength(b *testing.B, br *bufio.Reader) int {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) == 2 {
			return length
		}
		if v, ok := strings.CutPrefix(string(line), "Content-Length: "); ok {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
}

// bodyBackend answers GET /N with N zero bytes and reads a POST's body away, answering it
// with an empty 200, on keep-alive connections.
func bodyBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	zero := make([]byte, 256<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 64<<10)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					method, rest, _ := strings.Cut(line, " ")
					target, _, _ := strings.Cut(rest, " ")
					length := 0
					for {
						l, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(l) == 2 {
							break
						}
						if v, ok := strings.CutPrefix(string(l), "Content-Length: "); ok {
							length, _ = strconv.Atoi(strings.TrimSpace(v))
						}
					}
					if method == "POST" {
						if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
							return
						}
						if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
							return
						}
						continue
					}
					n, _ := strconv.Atoi(target[1:])
					if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n); err != nil {
						return
					}
					for left := n; left > 0; {
						k, err := c.Write(zero[:min(left, len(zero))])
						if err != nil {
							return
						}
						left -= k
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
