package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestSQLiteSync: the synchronous setting reaches SQLite (1 = NORMAL,
// 2 = FULL), the journal is the write-ahead log, and a bad value is refused.
func TestSQLiteSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sync    string
		want    int
		wantErr bool
	}{
		{"", 1, false},
		{"normal", 1, false},
		{"full", 2, false},
		{"FULL", 2, false},
		{"off", 0, true},
	}
	for _, tt := range tests {
		st, err := OpenWith(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{SQLiteSync: tt.sync})
		if tt.wantErr {
			if err == nil {
				st.Close()
				t.Errorf("SQLiteSync %q accepted", tt.sync)
			}
			continue
		}
		if err != nil {
			t.Fatalf("SQLiteSync %q: %v", tt.sync, err)
		}
		db := st.(*sqlStore).write
		var got int
		var journal string
		if err := db.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&journal); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if got != tt.want || journal != "wal" {
			t.Errorf("SQLiteSync %q: synchronous = %d, journal_mode = %s; want %d, wal", tt.sync, got, journal, tt.want)
		}
	}
}
