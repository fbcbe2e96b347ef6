package localerr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/localerr"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// netErr wraps errno the way net wraps a failed system call of a dial.
func netErr(syscallName string, errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(syscallName, errno)}
}

// closedAddr returns an address nothing listens on: a listener's port, closed again.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return addr
}

func TestIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A real dial refused by the peer.
	_, refused := (&net.Dialer{}).DialContext(ctx, "tcp", closedAddr(t))
	if refused == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	// A real local failure: binding a source address this host does not have (TEST-NET-1).
	_, noAddr := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}}).DialContext(ctx, "tcp", closedAddr(t))
	if noAddr == nil {
		t.Fatal("dial from 192.0.2.1 succeeded; this host has that address")
	}
	// A real failure through net/http, wrapped in *url.Error.
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}}).DialContext}
	defer tr.CloseIdleConnections()
	_, httpNoAddr := (&http.Client{Transport: tr}).Get("http://" + closedAddr(t) + "/")

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "bare EMFILE", err: syscall.EMFILE, want: true},
		{name: "EMFILE from socket, as net wraps it", err: netErr("socket", syscall.EMFILE), want: true},
		{name: "ENFILE", err: netErr("socket", syscall.ENFILE), want: true},
		{name: "ENOBUFS", err: netErr("connect", syscall.ENOBUFS), want: true},
		{name: "ENOMEM", err: netErr("socket", syscall.ENOMEM), want: true},
		{name: "EADDRNOTAVAIL, no free local port", err: netErr("connect", syscall.EADDRNOTAVAIL), want: true},
		{name: "EMFILE inside url.Error and fmt wrapping", err: fmt.Errorf("probe: %w", &url.Error{Op: "Get", URL: "http://b/", Err: netErr("socket", syscall.EMFILE)}), want: true},
		{name: "real EADDRNOTAVAIL from a dial", err: noAddr, want: true},
		{name: "real EADDRNOTAVAIL through net/http", err: httpNoAddr, want: true},
		{name: "DNS lookup that could not open a socket", err: &net.DNSError{Err: "dial udp 127.0.0.53:53: socket: " + syscall.EMFILE.Error(), Name: "backend.internal"}, want: true},
		{name: "real connection refused", err: refused, want: false},
		{name: "ECONNRESET", err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, want: false},
		{name: "EHOSTUNREACH", err: netErr("connect", syscall.EHOSTUNREACH), want: false},
		{name: "DNS name not found", err: &net.DNSError{Err: "no such host", Name: "backend.internal", IsNotFound: true}, want: false},
		{name: "deadline exceeded", err: context.DeadlineExceeded, want: false},
		{name: "dial cancelled", err: &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}, want: false},
		{name: "unrelated error", err: errors.New("too many open files"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := localerr.Is(tt.err); got != tt.want {
				t.Fatalf("Is(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
