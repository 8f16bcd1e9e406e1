// Package version holds the build's version strings.
package version

// Version is the release of this binary; set with -ldflags "-X ...".
var Version = "0.1.0-dev"

// APIVersion is the newest ClearML API version the embedded server speaks.
const APIVersion = "2.31"
