package h2guard

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit only keeps a broken test from hanging; no test needs anywhere near it.
const waitLimit = 30 * time.Second
