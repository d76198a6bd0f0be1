package scenario

import (
	"os"
	"strconv"
	"time"
)

// EnvTimeScale multiplies every time limit of this package (a whole number
// from 1 to 100). `make vmtest` sets it in guests under software emulation,
// which run a scenario several times slower than the host.
const EnvTimeScale = "TCPCLOSE_TIME_SCALE"

// timeScale is read once: helpers inherit it through the environment.
var timeScale = parseTimeScale(os.Getenv(EnvTimeScale))

func parseTimeScale(s string) time.Duration {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 1
	}
	return time.Duration(n)
}

// scaled is a time limit multiplied by the time scale.
func scaled(d time.Duration) time.Duration { return d * timeScale }

// Scaled is d multiplied by the time scale (EnvTimeScale): for time limits
// of other packages' tests that run under emulation too.
func Scaled(d time.Duration) time.Duration { return scaled(d) }
