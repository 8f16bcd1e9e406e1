package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	t.Parallel()
	tb := &table{header: []string{"ID", "NAME", "NOTE"}}
	tb.add("1", "short", "")
	tb.add("22222", "two\nlines\tand tab", strings.Repeat("x", 100))
	tb.add("3", "ünïcode", "end")
	var b strings.Builder
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "ID     NAME               NOTE\n" +
		"1      short              -\n" +
		"22222  two lines and tab  " + strings.Repeat("x", maxCell-1) + "…\n" +
		"3      ünïcode            end\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteJSONAndNameRef(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := writeJSON(&b, json.RawMessage(`{"a":[1,2]}`), "{}"); err != nil || b.String() != "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n" {
		t.Errorf("writeJSON = %q, %v", b.String(), err)
	}
	b.Reset()
	if err := writeJSON(&b, json.RawMessage(`null`), "[]"); err != nil || b.String() != "[]\n" {
		t.Errorf("writeJSON(null) = %q, %v", b.String(), err)
	}
	var refs []nameRef
	if err := json.Unmarshal([]byte(`["q1", {"id": "q2", "name": "gpu"}, {"id": "q3"}]`), &refs); err != nil {
		t.Fatal(err)
	}
	if got := refs[0].label() + "," + refs[1].label() + "," + refs[2].label(); got != "q1,gpu,q3" {
		t.Errorf("labels = %s", got)
	}
}
