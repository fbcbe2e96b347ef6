package tracing

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// maxBatch is the most spans sent in one export. The OTel SDK's default is 512; fewer spans
// wait for their batch here, so fewer are live when the garbage collector marks them, for
// more exports, each of which costs (about 50,000 instructions over gRPC) under 1% of what
// recording its 64 spans did.
const maxBatch = 64

// queueProcessor is the span processor between the request path and the exporter. OnEnd,
// called on the request path when a span ends, only tries a non-blocking send on a bounded
// channel: when the queue is full the span is dropped and counted. Run, on its own goroutine,
// sends batches to the exporter. It stands in for the SDK's batch processor, which drops
// silently, because an operator must see from the metrics that traces are incomplete.
type queueProcessor struct {
	spans         chan sdktrace.ReadOnlySpan
	flush         chan chan struct{}
	exporter      sdktrace.SpanExporter
	batchTimeout  time.Duration
	exportTimeout time.Duration
	metrics       *metrics
	log           *slog.Logger
	closed        atomic.Bool
	failing       bool // the last export failed; only run touches it
}

// newQueueProcessor returns a processor for exp; its metrics must be set before use.
func newQueueProcessor(exp sdktrace.SpanExporter, cfg Config, log *slog.Logger) *queueProcessor {
	return &queueProcessor{
		spans:         make(chan sdktrace.ReadOnlySpan, cfg.QueueSize),
		flush:         make(chan chan struct{}),
		exporter:      exp,
		batchTimeout:  cfg.BatchTimeout,
		exportTimeout: cfg.ExportTimeout,
		log:           log,
	}
}

func (q *queueProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span for export and never blocks.
func (q *queueProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if q.closed.Load() {
		q.metrics.droppedShutdown.Inc()
		return
	}
	select {
	case q.spans <- s:
	default:
		q.metrics.droppedQueueFull.Inc()
	}
}

// Shutdown stops accepting spans; Run exports those already queued.
func (q *queueProcessor) Shutdown(context.Context) error {
	q.closed.Store(true)
	return nil
}

// ForceFlush waits until Run has exported every span queued before the call.
func (q *queueProcessor) ForceFlush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.flush <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run batches and exports spans until ctx ends, then exports what is queued.
func (q *queueProcessor) run(ctx context.Context) {
	batch := make([]sdktrace.ReadOnlySpan, 0, maxBatch)
	timer := time.NewTimer(q.batchTimeout)
	defer timer.Stop()
	send := func(ctx context.Context) {
		if len(batch) > 0 {
			q.export(ctx, batch)
			clear(batch)
			batch = batch[:0]
		}
		timer.Reset(q.batchTimeout)
	}
	// drain exports every span queued now.
	drain := func(ctx context.Context) {
		for {
			select {
			case s := <-q.spans:
				batch = append(batch, s)
				if len(batch) == maxBatch {
					send(ctx)
				}
			default:
				send(ctx)
				return
			}
		}
	}
	for {
		select {
		case s := <-q.spans:
			batch = append(batch, s)
			if len(batch) == maxBatch {
				send(ctx)
			}
		case <-timer.C:
			send(ctx)
		case done := <-q.flush:
			drain(ctx)
			close(done)
		case <-ctx.Done():
			q.closed.Store(true)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			drain(sctx)
			cancel()
			return
		}
	}
}

// export sends one batch; a failed batch is dropped and counted, not retried beyond what the
// exporter itself does within exportTimeout. A change between working and failing is logged
// once, not every batch.
func (q *queueProcessor) export(ctx context.Context, batch []sdktrace.ReadOnlySpan) {
	ctx, cancel := context.WithTimeout(ctx, q.exportTimeout)
	defer cancel()
	if err := q.exporter.ExportSpans(ctx, batch); err != nil {
		q.metrics.droppedExport.Add(float64(len(batch)))
		if !q.failing {
			q.log.Warn("span export failed; spans are dropped until it works again", "spans", len(batch), "error", err)
		}
		q.failing = true
		return
	}
	q.metrics.exported.Add(float64(len(batch)))
	if q.failing {
		q.log.Info("span export works again")
	}
	q.failing = false
}
