package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// TestModelsAndWorkerProperties: models are listed by id, task and project;
// worker properties replace by key and expire.
func TestModelsAndWorkerProperties(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		defer st.Close()
		now := time.Now().UTC()
		err = st.Update(ctx, func(tx store.Tx) error {
			for _, m := range []*api.Model{
				{ID: "m1", Name: "a", Company: "c", Task: "t1", Project: "p1"},
				{ID: "m2", Name: "b", Company: "c", Task: "t1", Project: "p2"},
				{ID: "m3", Name: "c", Company: "other", Task: "t1"},
			} {
				if err := tx.PutModel(m); err != nil {
					return err
				}
			}
			if err := tx.PutModel(&api.Model{ID: "m2", Name: "renamed", Company: "c", Task: "t2", Project: "p2"}); err != nil {
				return err
			}
			for _, p := range []store.WorkerProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}, {Key: "gone", Value: "x", Expires: now.Add(-time.Second)}} {
				if err := tx.PutWorkerProperty("c", "w", p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = st.View(ctx, func(tx store.Tx) error {
			for _, tc := range []struct {
				q    store.ModelQuery
				want int
			}{
				{store.ModelQuery{Company: "c"}, 2},
				{store.ModelQuery{Company: "c", Tasks: []string{"t1"}}, 1},
				{store.ModelQuery{Company: "c", Tasks: []string{"t2"}, Projects: []string{"p2"}}, 1},
				{store.ModelQuery{Company: "c", IDs: []string{"m1", "m3"}}, 1},
				{store.ModelQuery{Company: "c", IDs: []string{}}, 0},
			} {
				got, err := tx.Models(tc.q)
				if err != nil {
					return err
				}
				if len(got) != tc.want {
					t.Errorf("Models(%+v) = %d models, want %d", tc.q, len(got), tc.want)
				}
			}
			if m, err := tx.Model("m2"); err != nil || m.Name != "renamed" {
				t.Errorf("Model(m2) = %+v, %v", m, err)
			}
			props, err := tx.WorkerProperties("c", "w", now)
			if err != nil {
				return err
			}
			if len(props) != 1 || props[0].Value != "2" {
				t.Errorf("WorkerProperties = %+v, want k=2 only", props)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
