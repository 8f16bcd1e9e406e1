package taskprep

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzNotebookToScript converts notebooks (the input is the .ipynb file):
// no panic; a converted script starts with its header, has one "# In[i]:"
// section per code cell, and every code line is in it, either as is or
// (IPython magics and shell escapes) as a comment counted in skipped.
func FuzzNotebookToScript(f *testing.F) {
	for _, s := range []string{
		`{"cells": [{"cell_type": "markdown", "source": ["# Title\n"]},
		 {"cell_type": "code", "source": ["x = 6\n", "%matplotlib inline\n", "print(x * 7)\n"]},
		 {"cell_type": "code", "source": "!pip install foo\nprint('done')"}], "nbformat": 4}`,
		`{"cells": [{"cell_type": "code", "source": 3}]}`,
		`{"cells": [{"cell_type": "code"}]}`,
		`{"cells": null}`,
		`{"cells": [{"cell_type": "code", "source": ["a\r\n", "  %%time\r\n", "\tb"]}]}`,
		`[]`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "nb.ipynb")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		script, skipped, err := notebookToScript(path)
		if err != nil {
			if script != "" || skipped != 0 {
				t.Fatalf("error %v with a script or a count", err)
			}
			return
		}
		var nb struct {
			Cells []struct {
				CellType string          `json:"cell_type"`
				Source   json.RawMessage `json:"source"`
			} `json:"cells"`
		}
		if err := json.Unmarshal(data, &nb); err != nil {
			t.Fatalf("converted a notebook that is not JSON: %v", err)
		}
		if !strings.HasPrefix(script, "# Converted from "+path+" by clearml-agent\n") {
			t.Fatalf("script without its header:\n%s", script)
		}
		code, magic := 0, 0
		for _, c := range nb.Cells {
			if c.CellType != "code" {
				continue
			}
			code++
			var src string
			var lines []string
			if json.Unmarshal(c.Source, &lines) == nil {
				src = strings.Join(lines, "")
			} else if json.Unmarshal(c.Source, &src) != nil {
				t.Fatalf("converted a cell without a readable source: %s", c.Source)
			}
			for _, line := range strings.Split(src, "\n") {
				if l := strings.TrimSpace(line); strings.HasPrefix(l, "%") || strings.HasPrefix(l, "!") {
					magic++
					line = "# (IPython only, skipped) " + line
				}
				if !strings.Contains(script, line+"\n") {
					t.Fatalf("line %q is missing from the script:\n%s", line, script)
				}
			}
		}
		if n := strings.Count(script, "\n# In["); n < code {
			t.Fatalf("%d code cells, %d sections", code, n)
		}
		if skipped != magic {
			t.Fatalf("skipped %d, want %d", skipped, magic)
		}
	})
}
