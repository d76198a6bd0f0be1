package collector

import (
	"testing"
	"time"
)

// TestDrainClockPeriod: Wait returns once per period, not sooner and not
// much later.
func TestDrainClockPeriod(t *testing.T) {
	const period = 20 * time.Millisecond
	d, err := newDrainClock(period, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	const n = 5
	for range n {
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < n*period-time.Millisecond || took > n*period+time.Second {
		t.Errorf("%d waits took %v, want about %v", n, took, n*period)
	}
}

// TestDrainClockFire: Fire makes the drain due at once, from another
// goroutine too, and is harmless after Close.
func TestDrainClockFire(t *testing.T) {
	d, err := newDrainClock(time.Hour, -1)
	if err != nil {
		t.Fatal(err)
	}
	d.Fire()
	start := time.Now()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		d.Fire()
	}()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Fire made Wait return after %v", took)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Fire()
}
