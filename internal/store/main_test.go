package store_test

import (
	"os"
	"testing"

	"github.com/goclearml/agent/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}
