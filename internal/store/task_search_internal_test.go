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

func TestAppendRows(t *testing.T) {
	t.Parallel()
	scan := func(rows int) string { return fmt.Sprintf(`{"Node Type": "Seq Scan", "Plan Rows": %d}`, rows) }
	for _, c := range []struct {
		name, plan string
		want       string // "" = not read
	}{
		{"append", `[{"Plan": {"Node Type": "Append", "Plan Rows": 3, "Plans": [` + scan(1000) + `,` + scan(2) + `,` + scan(9) + `]}}]`, "[1000 2 9]"},
		{"parallel", `[{"Plan": {"Node Type": "Gather", "Plans": [{"Node Type": "Parallel Append", "Plans": [` + scan(400) + `,` + scan(1) + `,` + scan(5) + `]}]}}]`, "[400 1 5]"},
		{"other scans", `[{"Plan": {"Node Type": "Append", "Plans": [` + scan(1) + `,` + scan(2) + `]}}]`, ""},
		{"no append", `[{"Plan": {"Node Type": "Result", "Plans": [` + scan(1) + `,` + scan(2) + `,` + scan(3) + `]}}]`, ""},
		{"not json", `QUERY PLAN`, ""},
	} {
		rows, ok := appendRows([]byte(c.plan), 3)
		if got := fmt.Sprint(rows); ok != (c.want != "") || (ok && got != c.want) {
			t.Errorf("%s: %v, %v; want %q", c.name, rows, ok, c.want)
		}
	}
}
