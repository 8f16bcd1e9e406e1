package server

// OnLongPollWait makes s call f each time a queues.get_next_task long poll
// finds its queue empty and starts waiting, so that a test can enqueue
// exactly then.
func OnLongPollWait(s *Server, f func(queue string)) {
	s.waker.mu.Lock()
	defer s.waker.mu.Unlock()
	s.waker.onWait = f
}
