package dispatch

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	for _, tc := range []struct {
		delivery uint64
		want     time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{6, 32 * time.Second}, {7, time.Minute}, {8, time.Minute}, {1 << 40, time.Minute},
	} {
		if got := Backoff(tc.delivery); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.delivery, got, tc.want)
		}
	}
}

func TestRequestIDIsStablePerDeliveryAndWorkflow(t *testing.T) {
	a := requestID("SOAR_ALERTS:7", "soar-x-1")
	if a != requestID("SOAR_ALERTS:7", "soar-x-1") {
		t.Error("request ID changes between calls: a redelivery would not be recognised")
	}
	if a == requestID("SOAR_ALERTS:8", "soar-x-1") || a == requestID("SOAR_ALERTS:7", "soar-y-1") {
		t.Error("request IDs collide across deliveries or workflows")
	}
	if len(a) != 32 {
		t.Errorf("request ID %q: want 32 hex characters", a)
	}
}
