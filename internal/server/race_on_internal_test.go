//go:build race

package server

// raceEnabled: this test binary runs under the race detector, which turns
// off the runtime's tiny allocator (every small value takes a slot of its
// own), so a decoding keeps more heap than in the build the decode-cost
// bounds are for.
const raceEnabled = true
