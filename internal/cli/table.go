package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goclearml/agent/internal/api"
)

// table prints rows in aligned columns for people: two spaces between
// columns, the last column unpadded, an empty cell shown as "-". Cells are
// made single-line and long ones are cut, so a row stays one line.
type table struct {
	header []string
	rows   [][]string
	// full keeps long cells whole (a detail view, where the value is the
	// point); they are still made single-line.
	full bool
}

// maxCell bounds a cell's width in runes.
const maxCell = 60

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	rows := t.rows
	if t.header != nil {
		rows = append([][]string{t.header}, rows...)
	}
	var widths []int
	clean := make([][]string, len(rows))
	for i, r := range rows {
		clean[i] = make([]string, len(r))
		for j, c := range r {
			if t.full {
				c = oneLine(c)
			} else {
				c = cell(c)
			}
			clean[i][j] = c
			if j >= len(widths) {
				widths = append(widths, 0)
			}
			widths[j] = max(widths[j], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range clean {
		for j, c := range r {
			if j == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c)+2))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s fit one table cell: control characters become spaces, runs
// of white space one space, long text is cut with "…", and "" is "-".
func cell(s string) string {
	s = oneLine(s)
	if utf8.RuneCountInString(s) > maxCell {
		s = string([]rune(s)[:maxCell-1]) + "…"
	}
	return s
}

// oneLine makes s a single line: control characters become spaces, runs of
// white space one space, and "" is "-".
func oneLine(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if s == "" {
		return "-"
	}
	return s
}

// fmtTime shows a server time in local time, to the second; "" when unset.
func fmtTime(t *api.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateTime)
}

// writeJSON prints a JSON document from the server indented, as it came
// (no fields dropped or renamed); null prints as def.
func writeJSON(w io.Writer, raw json.RawMessage, def string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte(def)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("reading the server's answer: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// nameRef reads a reference that a server sends as an id string or as an
// object with id and name.
type nameRef struct{ ID, Name string }

func (r *nameRef) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		r.ID = s
		return nil
	}
	var o struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	r.ID, r.Name = o.ID, o.Name
	return nil
}

// label is the name, or the id when the name is unknown.
func (r nameRef) label() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}
