package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The listing's text search (TaskPageQuery.Search: a substring of the
// lowercased "id name comment") reads every listing row unless an index
// finds the candidates:
//
//   - PostgreSQL: a trigram index (pg_trgm) on the search column, used by
//     a LIKE pattern;
//   - SQLite: an FTS5 table with the trigram tokenizer (task_search), one
//     row per listing row; task_list.search_rid holds its row's rowid
//     (kept explicitly, since a VACUUM may renumber task_list's rowids).
//     A task write that keeps the search text leaves it alone.
//
// The exact test (instr or LIKE on the column) still decides; an index
// only narrows the rows it is applied to.

// likeEscaper makes a string a literal LIKE pattern (escape character \).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// searchIndex (migration 8) builds the search index of the back end.
func searchIndex(t *sqlTx) error {
	if t.s.dialect == "postgres" {
		return trigramSearchIndex(t)
	}
	if _, err := t.exec(`CREATE VIRTUAL TABLE task_search USING fts5(search, tokenize='trigram', detail='none')`); err != nil {
		return err
	}
	if _, err := t.exec(`CREATE INDEX task_list_search_rid ON task_list (search_rid)`); err != nil {
		return err
	}
	return t.indexNewSearchRows()
}

// trigramSearchIndex indexes the search column by trigrams on
// PostgreSQL. It needs the pg_trgm extension (in PostgreSQL's contrib,
// trusted: a database owner may create it); without it the search reads
// every row, as it did, and the migration goes on.
func trigramSearchIndex(t *sqlTx) error {
	if _, err := t.exec(`SAVEPOINT trigram`); err != nil {
		return err
	}
	_, err := t.exec(`CREATE EXTENSION IF NOT EXISTS pg_trgm`)
	if err == nil {
		_, err = t.exec(`CREATE INDEX task_list_search ON task_list USING gin (search gin_trgm_ops)`)
	}
	if err != nil {
		_, rerr := t.exec(`ROLLBACK TO SAVEPOINT trigram`)
		return rerr
	}
	_, err = t.exec(`RELEASE SAVEPOINT trigram`)
	return err
}

// indexNewSearchRows adds the FTS rows of the listing rows that have none
// (SQLite; after a migration or a bulk write), in two statements: their
// rowids follow the table's largest.
func (t *sqlTx) indexNewSearchRows() error {
	var offset int64
	if err := t.queryRow(`SELECT COALESCE(MAX(rowid), 0) FROM task_search`).Scan(&offset); err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO task_search (rowid, search) SELECT rowid + ?, search FROM task_list WHERE search_rid IS NULL`, offset); err != nil {
		return err
	}
	_, err := t.exec(`UPDATE task_list SET search_rid = rowid + ? WHERE search_rid IS NULL`, offset)
	return err
}

// searchRow is a listing row's search text and FTS row, read before an
// upsert changes it.
type searchRow struct {
	found  bool
	rid    *int64
	search string
}

func (t *sqlTx) readSearchRow(id string) (searchRow, error) {
	var r searchRow
	if !t.s.searchFTS {
		return r, nil
	}
	err := t.queryRow(`SELECT search_rid, search FROM task_list WHERE id = ?`, id).Scan(&r.rid, &r.search)
	if err == nil {
		r.found = true
	} else if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return r, err
}

// putSearch replaces the FTS row of listing row id when its text changed.
func (t *sqlTx) putSearch(id string, old searchRow, search string) error {
	if !t.s.searchFTS || (old.found && old.rid != nil && old.search == search) {
		return nil
	}
	if old.rid != nil {
		if _, err := t.exec(`DELETE FROM task_search WHERE rowid = ?`, *old.rid); err != nil {
			return err
		}
	}
	res, err := t.exec(`INSERT INTO task_search (search) VALUES (?)`, search)
	if err != nil {
		return err
	}
	rid, err := res.LastInsertId()
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE task_list SET search_rid = ? WHERE id = ?`, rid, id)
	return err
}

// deleteSearch drops the FTS row of listing row id.
func (t *sqlTx) deleteSearch(id string) error {
	if !t.s.searchFTS {
		return nil
	}
	_, err := t.exec(`DELETE FROM task_search WHERE rowid = (SELECT search_rid FROM task_list WHERE id = ?)`, id)
	return err
}

// maxEstimatedWords bounds the words of a search whose frequency
// trigramSearchCondition asks the planner for.
const maxEstimatedWords = 4

// trigramSearchCondition is a PostgreSQL search's condition. The trigram
// index intersects the lists of every trigram of its LIKE pattern, and a
// common word's trigrams are in most rows: the index then reads much to
// find few ("experiment 4242" in a million tasks named "experiment N":
// 2,700 index pages, 33 ms, where "4242" alone reads 10). So when the
// search has several words, the planner's estimates (from the column's
// statistics) pick its rarest word for the index, and the whole search is
// tested exactly on the rows that word finds. If every word is common the
// whole pattern goes to the index, as it would alone.
func (t *sqlTx) trigramSearchCondition(search string) ([]string, []any, error) {
	whole := []string{`search LIKE ? ESCAPE '\'`}
	wholeArgs := []any{"%" + likeEscaper.Replace(search) + "%"}
	words := searchWords(search)
	if !t.s.searchTrigram || len(words) < 2 {
		return whole, wholeArgs, nil
	}
	words = words[:min(len(words), maxEstimatedWords)]
	// One plan: the whole table, then each word (an Append of scans).
	parts := []string{`SELECT 1 FROM task_list`}
	args := make([]any, len(words))
	for i, w := range words {
		parts = append(parts, `SELECT 1 FROM task_list WHERE search LIKE ?`)
		args[i] = "%" + w + "%"
	}
	var raw []byte
	// Not through the statement cache: an EXPLAIN is planned anew each time.
	err := t.q.QueryRowContext(t.ctx, t.rebind(`EXPLAIN (FORMAT JSON) `+strings.Join(parts, ` UNION ALL `)), args...).Scan(&raw)
	if err != nil {
		return nil, nil, fmt.Errorf("estimating the search's words: %w", err)
	}
	rows, ok := appendRows(raw, len(parts))
	if !ok {
		return whole, wholeArgs, nil // a plan of another shape: no estimates
	}
	best := 1
	for i := 2; i < len(rows); i++ {
		if rows[i] < rows[best] {
			best = i
		}
	}
	// A word in more than a hundredth of the rows is common: its lists
	// are long.
	if rows[best]*100 > rows[0] {
		return whole, wholeArgs, nil
	}
	conds := []string{`search LIKE ?`, `strpos(search, ?) > 0`}
	return conds, []any{"%" + words[best-1] + "%", search}, nil
}

// searchWords are the distinct runs of at least 3 ASCII letters or digits
// of a search (the trigram index's words, which a LIKE pattern of letters
// and digits alone needs no escaping for), longest first.
func searchWords(search string) []string {
	var words []string
	for _, w := range strings.FieldsFunc(search, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		if len(w) >= 3 && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	slices.SortStableFunc(words, func(a, b string) int { return len(b) - len(a) })
	return words
}

// appendRows reads the estimated rows of each of the n scans under the
// Append node of an EXPLAIN (FORMAT JSON) of a UNION ALL (under a Gather,
// if the planner made it parallel); false if the plan has no such node.
func appendRows(raw []byte, n int) ([]float64, bool) {
	type node struct {
		Type  string  `json:"Node Type"`
		Rows  float64 `json:"Plan Rows"`
		Plans []node  `json:"Plans"`
	}
	var plans []struct{ Plan node }
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		return nil, false
	}
	p := plans[0].Plan
	for !strings.HasSuffix(p.Type, "Append") && len(p.Plans) == 1 {
		p = p.Plans[0]
	}
	if !strings.HasSuffix(p.Type, "Append") || len(p.Plans) != n {
		return nil, false
	}
	rows := make([]float64, n)
	for i, c := range p.Plans {
		rows[i] = c.Rows
	}
	return rows, true
}

// maxSparseSearch is the most candidates a search is looked up by (an
// index lookup each, then a sort): with more, matches are common enough
// (5 % of a million tasks) that walking the listing in its order finds a
// page sooner. A store keeps it in sqlStore.maxSparse (tests lower it).
const maxSparseSearch = 50_000

// searchCandidates narrows a search on SQLite: a condition on search_rid
// when the FTS table finds at most maxSparse candidates; "" when
// the search has no run of 3 characters without LIKE's wildcards (the
// trigram index needs 3) or its matches are common.
func (t *sqlTx) searchCandidates(search string) (cond string, arg any, err error) {
	if !t.s.searchFTS {
		return "", nil, nil
	}
	run := ""
	for _, part := range strings.FieldsFunc(search, func(r rune) bool { return r == '%' || r == '_' }) {
		if len([]rune(part)) > len([]rune(run)) {
			run = part
		}
	}
	if len([]rune(run)) < 3 {
		return "", nil, nil
	}
	rows, err := t.query(`SELECT rowid FROM task_search WHERE search LIKE ? LIMIT ?`, "%"+run+"%", t.s.maxSparse+1)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	var rids []int64
	for rows.Next() {
		var rid int64
		if err := rows.Scan(&rid); err != nil {
			return "", nil, err
		}
		rids = append(rids, rid)
	}
	if err := rows.Err(); err != nil || len(rids) > t.s.maxSparse {
		return "", nil, err
	}
	b, err := json.Marshal(rids)
	if err != nil {
		return "", nil, err
	}
	return "search_rid IN (SELECT value FROM json_each(?))", string(b), nil
}
