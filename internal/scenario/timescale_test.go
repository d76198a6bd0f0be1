package scenario

import (
	"testing"
	"time"
)

func TestParseTimeScale(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 1}, {"1", 1}, {"10", 10}, {"100", 100},
		{"0", 1}, {"-3", 1}, {"101", 1}, {"2.5", 1}, {"x", 1},
	}
	for _, tt := range tests {
		if got := parseTimeScale(tt.in); got != tt.want {
			t.Errorf("parseTimeScale(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
