package store

// SetMaxSparseSearch lowers, for st alone, how many candidates a text
// search is looked up by before it walks the listing instead, so that a
// test reaches both paths with a few thousand tasks.
func SetMaxSparseSearch(st Store, n int) {
	if s, ok := st.(*sqlStore); ok {
		s.maxSparse = n
	}
}
