package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/pgtest"
)

// TestTrigramSearchCondition: on PostgreSQL the index gets a search's
// rarest word, by the planner's estimates, unless every word is common.
func TestTrigramSearchCondition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	if !s.searchTrigram {
		t.Skip("pg_trgm is not available to this PostgreSQL: the search has no index to choose words for")
	}
	// Tasks named "experiment N" (GenerateTasks analyzes them after).
	spec := SyntheticTasks{Company: "c", User: "u", N: 20_000, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := GenerateTasks(ctx, st, spec); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		search string
		conds  string
		args   string
	}{
		{"experiment 4242", `[search LIKE ? strpos(search, ?) > 0]`, `[%4242% experiment 4242]`},
		{"4242 experiment", `[search LIKE ? strpos(search, ?) > 0]`, `[%4242% 4242 experiment]`},
		{"experiment", `[search LIKE ? ESCAPE '\']`, `[%experiment%]`},
		{"experiment 42", `[search LIKE ? ESCAPE '\']`, `[%experiment 42%]`},
		{"experiment_1%", `[search LIKE ? ESCAPE '\']`, `[%experiment\_1\%%]`},
		{"experiment per", `[search LIKE ? ESCAPE '\']`, `[%experiment per%]`},
	} {
		var conds []string
		var args []any
		err := st.View(ctx, func(tx Tx) error {
			var err error
			conds, args, err = tx.(*sqlTx).trigramSearchCondition(c.search)
			return err
		})
		if err != nil {
			t.Fatalf("%q: %v", c.search, err)
		}
		if got := fmt.Sprint(conds); got != c.conds {
			t.Errorf("%q: conditions %s, want %s", c.search, got, c.conds)
		}
		if got := fmt.Sprint(args); got != c.args {
			t.Errorf("%q: arguments %s, want %s", c.search, got, c.args)
		}
	}
}

func TestSearchWords(t *testing.T) {
	t.Parallel()
	for search, want := range map[string]string{
		"experiment 4242":        "[experiment 4242]",
		"a-b_c":                  "[]",
		"résumé run_12 run run":  "[sum run]",
		"train%val abcd 100_000": "[train abcd val 100 000]",
	} {
		if got := fmt.Sprint(searchWords(search)); got != want {
			t.Errorf("searchWords(%q) = %s, want %s", search, got, want)
		}
	}
}
