package fetch

import (
	"context"
	"sync"
	"time"
)

// pacer keeps at least gap between the starts of two requests to one host,
// and holds a host back after it asked for a pause (Retry-After).
type pacer struct {
	gap   time.Duration
	mu    sync.Mutex
	hosts map[string]*hostPace
}

type hostPace struct {
	next    time.Time // earliest start the next Wait may return at
	started time.Time // the last real start
	hold    time.Time // no start before this (Retry-After)
}

func newPacer(gap time.Duration) *pacer {
	return &pacer{gap: gap, hosts: map[string]*hostPace{}}
}

func (p *pacer) host(h string) *hostPace {
	hp := p.hosts[h]
	if hp == nil {
		hp = &hostPace{}
		p.hosts[h] = hp
	}
	return hp
}

// Wait reserves the next start time of host and sleeps until it.
func (p *pacer) Wait(ctx context.Context, host string) error {
	p.mu.Lock()
	hp := p.host(host)
	at := latest(time.Now(), hp.next, hp.hold)
	hp.next = at.Add(p.gap)
	p.mu.Unlock()
	return sleepUntil(ctx, at)
}

// Start waits, if a request to host started less than gap ago (the global
// limit can reorder starts), and records this start.
func (p *pacer) Start(ctx context.Context, host string) error {
	for {
		p.mu.Lock()
		hp := p.host(host)
		at := latest(hp.started.Add(p.gap), hp.hold)
		now := time.Now()
		if !now.Before(at) {
			hp.started = now
			hp.next = latest(hp.next, now.Add(p.gap))
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		if err := sleepUntil(ctx, at); err != nil {
			return err
		}
	}
}

// Hold keeps requests to host from starting before t.
func (p *pacer) Hold(host string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hp := p.host(host)
	hp.hold = latest(hp.hold, t)
}

// forget drops the state of hosts idle for longer than every pause, so the
// map does not grow with the number of hosts ever seen.
func (p *pacer) forget(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for h, hp := range p.hosts {
		if now.After(hp.next) && now.After(hp.hold) && now.Sub(hp.started) > p.gap {
			delete(p.hosts, h)
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func latest(ts ...time.Time) time.Time {
	l := ts[0]
	for _, t := range ts[1:] {
		if t.After(l) {
			l = t
		}
	}
	return l
}
