package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/veloflux/veloflux/discovery"
)

// grpcBackend is a real grpc-go server on h2c: the standard health service (unary Check,
// server-streaming Watch, NotFound for unknown services) and two test methods. /test.Echo/
// Deadline answers with the deadline it received; /test.Echo/Block waits until its call is
// cancelled and reports that on cancelled.
type grpcBackend struct {
	addr      string
	health    *health.Server
	cancelled chan struct{}
}

func newGRPCBackend(t *testing.T) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{addr: ln.Addr().String(), health: health.NewServer(), cancelled: make(chan struct{}, 1)}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		switch method {
		case "/test.Echo/Deadline":
			dl, ok := stream.Context().Deadline()
			if !ok {
				return status.Error(codes.FailedPrecondition, "no deadline reached the backend")
			}
			return stream.SendMsg(wrapperspb.String(time.Until(dl).Round(time.Second).String()))
		case "/test.Echo/Block":
			if err := stream.SendMsg(wrapperspb.String("blocking")); err != nil {
				return err
			}
			<-stream.Context().Done()
			b.cancelled <- struct{}{}
			return stream.Context().Err()
		}
		return status.Error(codes.Unimplemented, method)
	}))
	healthpb.RegisterHealthServer(srv, b.health)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return b
}

// TestGRPCThroughProxy: a grpc-go client on the TLS listener reaches a grpc-go server that is
// an h2c backend: unary and server-streaming calls, trailers (grpc-status), the deadline
// (grpc-timeout) and cancellation all cross the proxy.
func TestGRPCThroughProxy(t *testing.T) {
	be := newGRPCBackend(t)
	snap := onePoolSnapshot("round_robin", false, discovery.Backend{ID: "grpc", Address: be.addr, Scheme: "h2c", Weight: 1})
	p := newProxy(t, DefaultConfig(), Options{}, snap)
	cfg, roots := tlsServerConfig(t)
	s, _, _ := runServer(t, cfg, p)

	conn, err := grpc.NewClient("passthrough:///"+s.Addrs()[1].String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	hc := healthpb.NewHealthClient(conn)

	t.Run("unary", func(t *testing.T) {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check: %v, %v", resp, err)
		}
	})
	t.Run("status in trailers", func(t *testing.T) {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("Check of an unknown service: %v, want NotFound from the backend's trailers", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		be.health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
		if err != nil {
			t.Fatal(err)
		}
		first, err := w.Recv()
		if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first update: %v, %v", first, err)
		}
		// The second message is sent only after the first arrived: it must be flushed through
		// the proxy on its own, not held back until the stream ends.
		be.health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
		second, err := w.Recv()
		if err != nil || second.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("second update: %v, %v", second, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		defer dcancel()
		out := new(wrapperspb.StringValue)
		if err := conn.Invoke(dctx, "/test.Echo/Deadline", wrapperspb.String("x"), out); err != nil {
			t.Fatal(err)
		}
		if d, err := time.ParseDuration(out.GetValue()); err != nil || d > 20*time.Second || d < 10*time.Second {
			t.Fatalf("backend saw a deadline %q away, want the client's 20s less the trip", out.GetValue())
		}
	})
	t.Run("cancellation", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		st, err := conn.NewStream(cctx, &grpc.StreamDesc{ServerStreams: true}, "/test.Echo/Block")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			t.Fatalf("first message: %v", err)
		}
		ccancel()
		select {
		case <-be.cancelled:
		case <-ctx.Done():
			t.Fatal("the backend's call was not cancelled after the client cancelled")
		}
		if err := st.RecvMsg(new(wrapperspb.StringValue)); status.Code(err) != codes.Canceled && !errors.Is(err, io.EOF) {
			t.Fatalf("after cancel: %v", err)
		}
	})
}
