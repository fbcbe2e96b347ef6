package h2guard

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit only keeps a broken test from hanging; no test needs anywhere near it. It is the
// guard every package's tests share, so VELOFLUX_TEST_TIMEOUT_SCALE stretches it too.
var waitLimit = testutil.Timeout()
