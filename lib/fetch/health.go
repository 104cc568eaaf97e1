package fetch

// Host health: a host that gave no usable connection --host-failures times
// in a row, with no response between, is unreachable, and its new lines
// fail at once instead of each trying all its retries.

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// maxHealth bounds the hosts whose failures health remembers: a run over
// many dead hosts must not grow with them. A host forgotten counts again
// from zero.
var maxHealth = 1024

// health counts, for each host, the connection-level failures since its
// last response (download.ConnFailure says which errors are).
type health struct {
	limit int                    // --host-failures; 0: off
	hosts map[string]*hostHealth // hosts that failed since their last response
}

type hostHealth struct {
	fails int
	last  string // the last failure, as text: an error value holds more
}

// setHealth turns host health on: limit consecutive connection failures
// make a host unreachable; 0 turns it off.
func (s *sched) setHealth(limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health = health{limit: limit, hosts: map[string]*hostHealth{}}
}

// connResult is download.Pool's OnConn: err is nil when a request to host
// got a response, else the connection-level failure of one that got none.
// The failure that reaches the limit fails the host's queued new lines;
// lines already running keep their own retries.
func (s *sched) connResult(host string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hosts[host]; h != nil {
		h.warm = err == nil
	}
	hs := &s.health
	if hs.limit == 0 {
		return
	}
	if err == nil {
		delete(hs.hosts, host)
		return
	}
	hh := hs.hosts[host]
	if hh == nil {
		if len(hs.hosts) >= maxHealth {
			hs.forgetOne()
		}
		hh = &hostHealth{}
		hs.hosts[host] = hh
	}
	hh.fails++
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is another line's
	}
	hh.last = err.Error()
	if hh.fails != hs.limit {
		return
	}
	h := s.hosts[host]
	if h == nil {
		return
	}
	dead := s.unreachable(host)
	kept := h.queue[:0]
	for _, t := range h.queue {
		if t.grant == nil { // a new line; a retry is a running line's
			s.doom(t, dead)
		} else {
			kept = append(kept, t)
		}
	}
	clear(h.queue[len(kept):])
	h.queue = kept
	now := time.Now()
	s.place(h, now)
	s.pump(now)
}

// forgetOne forgets a host that is not unreachable, or any if all are.
func (hs *health) forgetOne() {
	var any string
	for name, hh := range hs.hosts {
		if hh.fails < hs.limit {
			delete(hs.hosts, name)
			return
		}
		any = name
	}
	delete(hs.hosts, any)
}

// unreachable returns the error new lines of host fail with, nil if it is
// not unreachable. s.mu is held.
func (s *sched) unreachable(host string) error {
	hh := s.health.hosts[host]
	if hh == nil || hh.fails < s.health.limit || s.health.limit == 0 {
		return nil
	}
	return fmt.Errorf("host unreachable: %s (%d connections failed in a row; see --host-failures)", hh.last, hh.fails)
}

// doom queues t, a new line of an unreachable host, to fail with err at the
// next free slot. s.mu is held.
func (s *sched) doom(t *ticket, err error) {
	t.dead = err
	s.doomed = append(s.doomed, t)
}

// failDoomed launches doomed lines into free slots, before any other: they
// make no request (acquire fails their first attempt), so neither the
// per-host limit nor the pacing holds them, and the slot comes back at
// once. Through a slot, a doomed line still costs no more descriptors than
// -j allows. s.mu is held.
func (s *sched) failDoomed() {
	for s.free > 0 && len(s.doomed) > 0 {
		t := s.doomed[0]
		s.doomed[0] = nil
		s.doomed = s.doomed[1:]
		s.free--
		s.inflight.Add(1)
		t.host.active++
		t.host.lines++
		t.slot = true
		go s.launch(t)
	}
}
