// Command loadgen sends a fixed number of GET requests over one protocol (HTTP/1.1, HTTP/2 or
// HTTP/3, all over TLS) from a fixed number of clients, each with its own connection, and
// prints one tab-separated line: protocol, requests/s, requests that got a 2xx, total.
//
// It exists because the Debian h2load is built without HTTP/3: driving the three protocols
// with the same Go client keeps the figures comparable. bench/protocols.sh runs it.
//
//	loadgen -proto h3 -n 100000 -c 64 -insecure https://127.0.0.1:18443/plain
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func main() {
	proto := flag.String("proto", "h1", "h1, h2 or h3")
	n := flag.Int("n", 10000, "requests in all")
	c := flag.Int("c", 16, "clients, each with its own connection")
	insecure := flag.Bool("insecure", false, "do not verify the server's certificate")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	flag.Parse()
	if flag.NArg() != 1 || *n < 1 || *c < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen [-proto h1|h2|h3] [-n requests] [-c clients] [-insecure] URL")
		os.Exit(2)
	}
	url := flag.Arg(0)
	tlsConf := &tls.Config{InsecureSkipVerify: *insecure}

	clients := make([]*http.Client, *c)
	for i := range clients {
		rt, err := transport(*proto, tlsConf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		clients[i] = &http.Client{Transport: rt, Timeout: *timeout}
	}

	var next, ok atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, cl := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(*n) {
				if err := get(cl, url); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, cl := range clients {
		cl.CloseIdleConnections()
		if tr, ok := cl.Transport.(io.Closer); ok {
			_ = tr.Close()
		}
	}
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", err)
	}
	fmt.Printf("%s\t%.0f\t%d\t%d\n", *proto, float64(*n)/elapsed.Seconds(), ok.Load(), *n)
}

// transport returns a round tripper that speaks only proto.
func transport(proto string, tlsConf *tls.Config) (http.RoundTripper, error) {
	switch proto {
	case "h1", "h2":
		tr := &http.Transport{TLSClientConfig: tlsConf.Clone(), Protocols: new(http.Protocols), MaxIdleConnsPerHost: 1, DisableCompression: true}
		if proto == "h1" {
			tr.Protocols.SetHTTP1(true)
		} else {
			tr.Protocols.SetHTTP2(true)
		}
		return tr, nil
	case "h3":
		return &http3.Transport{TLSClientConfig: tlsConf.Clone()}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (want h1, h2 or h3)", proto)
}

// get sends one request and reads the whole answer, so the connection is reused.
func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
