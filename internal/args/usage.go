package args

import "strings"

// Help layout, close to argparse's HelpFormatter.
const (
	usageWidth = 100
	helpColumn = 24
)

// metavar is argparse's default: {A,B} for choices, else the upper-case dest.
func (o *option) metavar() string {
	if len(o.choices) > 0 {
		return "{" + strings.Join(o.choices, ",") + "}"
	}
	return strings.ToUpper(o.dest)
}

func (o *option) argsText() string {
	m := o.metavar()
	switch o.arity {
	case oneArg:
		return m
	case optionalArg:
		return "[" + m + "]"
	case anyArgs:
		return "[" + m + " ...]"
	case someArgs:
		return m + " [" + m + " ...]"
	}
	return ""
}

// usagePart is the option's entry on the "usage:" line.
func (o *option) usagePart() string {
	s := o.names[0]
	if a := o.argsText(); a != "" {
		s += " " + a
	}
	if !o.required {
		s = "[" + s + "]"
	}
	return s
}

// invocation is the option's entry in its help section.
func (o *option) invocation() string {
	a := o.argsText()
	parts := make([]string, len(o.names))
	for i, n := range o.names {
		parts[i] = n
		if a != "" {
			parts[i] += " " + a
		}
	}
	return strings.Join(parts, ", ")
}

// formatHelp renders an argparse-style help text for a parser's table.
func formatHelp(prog, description, epilog string, opts []*option) string {
	var b strings.Builder
	prefix := "usage: " + prog + " "
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = o.usagePart()
	}
	writeFilled(&b, prefix, strings.Repeat(" ", len(prefix)), parts, usageWidth)
	if description != "" {
		b.WriteString("\n")
		writeFilled(&b, "", "", strings.Fields(description), usageWidth)
	}
	var groups []string
	byGroup := map[string][]*option{}
	for _, o := range opts {
		if _, ok := byGroup[o.group]; !ok {
			groups = append(groups, o.group)
		}
		byGroup[o.group] = append(byGroup[o.group], o)
	}
	for _, g := range groups {
		title := g
		if title == "" {
			title = "options"
		}
		b.WriteString("\n" + title + ":\n")
		for _, o := range byGroup[g] {
			writeOption(&b, o)
		}
	}
	if epilog != "" {
		for _, para := range strings.Split(strings.TrimSpace(epilog), "\n\n") {
			b.WriteString("\n")
			writeFilled(&b, "", "", strings.Fields(para), usageWidth)
		}
	}
	return b.String()
}

func writeOption(b *strings.Builder, o *option) {
	inv := "  " + o.invocation()
	words := strings.Fields(o.help)
	pad := strings.Repeat(" ", helpColumn)
	if len(words) == 0 {
		b.WriteString(inv + "\n")
		return
	}
	if len(inv) <= helpColumn-2 {
		writeFilled(b, inv+strings.Repeat(" ", helpColumn-len(inv)), pad, words, usageWidth)
		return
	}
	b.WriteString(inv + "\n")
	writeFilled(b, pad, pad, words, usageWidth)
}

// writeFilled writes words after first, wrapping at width; continuation
// lines start with indent. A word longer than a line gets a line of its own.
func writeFilled(b *strings.Builder, first, indent string, words []string, width int) {
	line := first
	empty := true
	for _, w := range words {
		if !empty && len(line)+1+len(w) > width {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line, empty = indent, true
		}
		if empty {
			line += w
		} else {
			line += " " + w
		}
		empty = false
	}
	b.WriteString(strings.TrimRight(line, " ") + "\n")
}
