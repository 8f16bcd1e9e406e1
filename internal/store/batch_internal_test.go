package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// TestRunBatch runs batches of group commit directly (the writer forms
// them by timing, which a test cannot steer): each call's changes commit
// or roll back as if it ran alone, a batch that does not fail runs each
// call once, and one that fails runs again, each call in a savepoint (the
// calls after the first failure ran only then).
func TestRunBatch(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name string
		n    int
		fail map[int]string // call index -> "error" or "panic"
		runs []int          // times each call ran
	}{
		{"all succeed", 6, nil, []int{1, 1, 1, 1, 1, 1}},
		{"one alone fails", 1, map[int]string{0: "error"}, []int{1}},
		{"first fails", 6, map[int]string{0: "error"}, []int{2, 1, 1, 1, 1, 1}},
		{"middle fails", 6, map[int]string{3: "error"}, []int{2, 2, 2, 2, 1, 1}},
		{"last panics", 6, map[int]string{5: "panic"}, []int{2, 2, 2, 2, 2, 2}},
		{"several fail", 6, map[int]string{1: "error", 2: "panic", 4: "error"}, []int{2, 2, 1, 1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s := st.(*sqlStore)
			n := c.n
			runs := make([]int, n)
			batch := make([]*batchReq, n)
			for i := range batch {
				batch[i] = &batchReq{ctx: context.Background(), done: make(chan error, 1), fn: func(tx Tx) error {
					runs[i]++
					if _, err := tx.AddEntry("q", fmt.Sprintf("t%d", i), api.Now()); err != nil {
						return err
					}
					switch c.fail[i] {
					case "error":
						return boom
					case "panic":
						panic("kaboom")
					}
					return nil
				}}
			}
			s.runBatch(batch)
			for i, r := range batch {
				err := <-r.done
				switch c.fail[i] {
				case "":
					if err != nil {
						t.Errorf("call %d: %v", i, err)
					}
				case "error":
					if !errors.Is(err, boom) {
						t.Errorf("call %d: %v, want boom", i, err)
					}
				case "panic":
					if err == nil {
						t.Errorf("call %d: no error for a panic", i)
					}
				}
				if runs[i] != c.runs[i] {
					t.Errorf("call %d ran %d times, want %d", i, runs[i], c.runs[i])
				}
			}
			var entries []string
			err = st.View(context.Background(), func(tx Tx) error {
				es, err := tx.Entries("q", 100)
				for _, e := range es {
					entries = append(entries, e.Task)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range n {
				if c.fail[i] == "" {
					want = append(want, fmt.Sprintf("t%d", i))
				}
			}
			if fmt.Sprint(entries) != fmt.Sprint(want) {
				t.Errorf("queue holds %v, want %v", entries, want)
			}
		})
	}
}
