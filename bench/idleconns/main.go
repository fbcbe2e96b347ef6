// Command idleconns opens n keep-alive HTTP/1.1 connections to a proxy, sends one GET on each
// and reads its answer, then holds them all idle until SIGINT or SIGTERM. It prints
// "ready <n>" once every connection has had its answer, so a script can measure the proxy's
// memory with n idle client connections against its memory before. bench/run.sh runs it.
//
//	idleconns -n 10000 127.0.0.1:18080 /plain
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10000, "connections to open and hold")
	parallel := flag.Int("parallel", 64, "connections opened at once")
	flag.Parse()
	if flag.NArg() != 2 || *n < 1 || *parallel < 1 {
		fmt.Fprintln(os.Stderr, "usage: idleconns [-n conns] [-parallel k] host:port path")
		os.Exit(2)
	}
	addr, path := flag.Arg(0), flag.Arg(1)

	conns := make([]net.Conn, *n)
	errs := make([]error, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, *parallel)
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = open(addr, path)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: connection %d of %d: %v\n", i+1, *n, err)
			os.Exit(1)
		}
	}
	fmt.Printf("ready %d\n", *n)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	for _, c := range conns {
		_ = c.Close()
	}
}

// open dials addr, sends one keep-alive GET for path and reads the whole answer, leaving the
// connection open and idle.
func open(addr, path string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", path); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || resp.Close) {
		err = fmt.Errorf("answer %s, close %v: want 200 on a kept-alive connection", resp.Status, resp.Close)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
