package taskprep

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// notebookToScript turns a Jupyter notebook into the Python script its
// code cells make, as `jupyter nbconvert --to python` does, so that a task
// whose entry point is an .ipynb runs without Jupyter installed. IPython
// magics (%...) and shell escapes (!...) are not Python: they are kept as
// comments and counted, so the task log can say so.
func notebookToScript(path string) (script string, skipped int, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", 0, fmt.Errorf("reading notebook: %w", err)
	}
	var nb struct {
		Cells []struct {
			CellType string          `json:"cell_type"`
			Source   json.RawMessage `json:"source"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(raw, &nb); err != nil {
		return "", 0, fmt.Errorf("notebook %s is not valid JSON: %w", path, err)
	}
	var b strings.Builder
	b.WriteString("# Converted from " + path + " by clearml-agent\n")
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		// source is a string or a list of lines.
		var src string
		var lines []string
		if err := json.Unmarshal(c.Source, &lines); err == nil {
			src = strings.Join(lines, "")
		} else if err := json.Unmarshal(c.Source, &src); err != nil {
			return "", 0, fmt.Errorf("notebook %s: cell %d has no readable source", path, i)
		}
		fmt.Fprintf(&b, "\n# In[%d]:\n\n", i)
		for _, line := range strings.Split(src, "\n") {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, "%") || strings.HasPrefix(t, "!") {
				skipped++
				b.WriteString("# (IPython only, skipped) " + line + "\n")
				continue
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String(), skipped, nil
}
