package docker

import "time"

// SetUsageClock makes u record uses at now() instead of the time of day.
func SetUsageClock(u *ImageUsage, now func() time.Time) { u.now = now }
