package server

import (
	"slices"
	"strings"
)

// idSet returns the ids as a set, or nil for an empty list (no filter).
func idSet(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// termSet is a list filter's terms, compiled once per request: a filter
// may name up to MaxListItems values, so matching looks values up in sets
// instead of walking the terms for every document.
type termSet struct {
	all                    bool // every include must match ("__$all")
	include                []string
	includeSet, excludeSet map[string]bool
	// includeNone and excludeNone are the null term: "has no value".
	includeNone, excludeNone bool
}

func compileTerms(terms []any) *termSet {
	ts := &termSet{includeSet: map[string]bool{}, excludeSet: map[string]bool{}}
	negateNext := false
	for _, t := range terms {
		if t == nil {
			if negateNext {
				ts.excludeNone = true
			} else {
				ts.includeNone = true
			}
			negateNext = false
			continue
		}
		s := t.(string)
		switch s {
		case "__$all", "__$and":
			ts.all = true
			continue
		case "__$any", "__$or":
			ts.all = false
			continue
		case "__$not":
			negateNext = true
			continue
		case "__$nop":
			negateNext = false
			continue
		}
		switch {
		case strings.HasPrefix(s, "-") && !negateNext:
			ts.excludeSet[s[1:]] = true
		case negateNext:
			ts.excludeSet[s] = true
		default:
			if !ts.includeSet[s] {
				ts.include = append(ts.include, s)
			}
			ts.includeSet[s] = true
		}
		negateNext = false
	}
	return ts
}

// match applies list-filter semantics to the values a document has.
func (ts *termSet) match(values []string) bool {
	if ts.excludeNone && len(values) == 0 {
		return false
	}
	for _, v := range values {
		if ts.excludeSet[v] {
			return false
		}
	}
	if len(ts.include) == 0 && !ts.includeNone {
		return true
	}
	if !ts.all {
		if ts.includeNone && len(values) == 0 {
			return true
		}
		for _, v := range values {
			if ts.includeSet[v] {
				return true
			}
		}
		return false
	}
	if ts.includeNone && len(values) != 0 {
		return false
	}
	for _, i := range ts.include {
		if !slices.Contains(values, i) {
			return false
		}
	}
	return true
}
