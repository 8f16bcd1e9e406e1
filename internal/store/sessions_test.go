package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/store"
)

// TestRevokedSessions: ended sessions are listed until they expire, an
// ending recorded again moves its expiry, they survive a reopen, and
// expired ones can be deleted.
func TestRevokedSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		now := time.UnixMilli(1_800_000_000_000).UTC()
		err = st.Update(ctx, func(tx store.Tx) error {
			for id, exp := range map[string]time.Time{"old": now.Add(-time.Second), "live": now.Add(time.Hour), "moved": now.Add(-time.Hour)} {
				if err := tx.RevokeSession(id, exp); err != nil {
					return err
				}
			}
			return tx.RevokeSession("moved", now.Add(2*time.Hour))
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err = store.Open(ctx, dsn); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var got map[string]time.Time
		var deleted int
		err = st.Update(ctx, func(tx store.Tx) error {
			var err error
			if got, err = tx.RevokedSessions(now); err != nil {
				return err
			}
			deleted, err = tx.DeleteExpiredRevocations(now)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got["live"].Equal(now.Add(time.Hour)) || !got["moved"].Equal(now.Add(2*time.Hour)) {
			t.Fatalf("RevokedSessions = %v, want live and moved", got)
		}
		if deleted != 1 {
			t.Fatalf("DeleteExpiredRevocations deleted %d, want 1", deleted)
		}
	})
}
