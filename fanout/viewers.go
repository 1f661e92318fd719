package fanout

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Viewer counts. Every ViewerReport a gateway publishes, for each room it has viewers
// in, {"n": local viewers} to lr.viewers.<room>.<gateway> (LR_VIEWERS keeps the last
// per subject for ViewerTTL). RePublish brings every report to every gateway with the
// room, which sums the reports younger than ViewerTTL: a gateway that dies stops
// reporting and drops out. The same loop sends each room's online count and unique
// viewers to its viewers when they changed, so at most once per ViewerReport.
//
// Unique viewers: each room keeps a HyperLogLog sketch (axiomhq/hyperloglog, 2^14
// registers, ~0.8% error) of the users that joined it through this gateway, merged
// with the sketches the other gateways store in LR_UNIQUE, read back every 5 reports.

type viewerLoop struct {
	h    *Hub
	stop chan struct{}
	wg   sync.WaitGroup
}

func newViewerLoop(h *Hub) *viewerLoop {
	v := &viewerLoop{h: h, stop: make(chan struct{})}
	v.wg.Add(1)
	go v.run()
	return v
}

func (v *viewerLoop) close() {
	close(v.stop)
	v.wg.Wait()
}

type openRoom struct {
	r       *room
	viewers int
}

func (v *viewerLoop) run() {
	defer v.wg.Done()
	t := time.NewTicker(v.h.cfg.State.ViewerReport)
	defer t.Stop()
	reported := make(map[string]bool) // rooms whose last report was not 0
	for tick := 0; ; tick++ {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		rooms := v.h.openRooms()
		for name := range reported {
			if _, ok := rooms[name]; !ok {
				v.report(name, nil, 0)
				delete(reported, name)
			}
		}
		for name, or := range rooms {
			v.report(name, or.r, or.viewers)
			reported[name] = or.viewers > 0
			if tick%5 == 4 {
				v.readSketches(or.r)
			}
			v.publishSketch(or.r)
			v.broadcast(or.r)
		}
	}
}

func (h *Hub) openRooms() map[string]openRoom {
	out := make(map[string]openRoom)
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for name, r := range sh.rooms {
			r.sinksMu.RLock()
			out[name] = openRoom{r, len(r.sinks)}
			r.sinksMu.RUnlock()
		}
		sh.mu.Unlock()
	}
	return out
}

func (v *viewerLoop) report(room string, r *room, n int) {
	h := v.h
	gw := h.cfg.State.GatewayID
	data := strconv.AppendInt([]byte(`{"n":`), int64(n), 10)
	if err := h.nc.Publish(viewersSubject(room, gw), append(data, '}')); err != nil {
		return
	}
	h.statem.viewerReports.Inc()
	if r != nil { // our own report counts at once; the stored copy replaces it
		s := &r.state
		s.mu.Lock()
		s.init()
		s.reports[gw] = viewerReport{n: n, at: time.Now()}
		s.mu.Unlock()
	}
}

func (v *viewerLoop) publishSketch(r *room) {
	s := &r.state
	s.mu.Lock()
	if !s.uniqueNew {
		s.mu.Unlock()
		return
	}
	s.uniqueNew = false
	data, err := s.unique.MarshalBinary()
	s.mu.Unlock()
	if err == nil {
		_ = v.h.nc.Publish(uniqueSubject(r.name, v.h.cfg.State.GatewayID), data)
	}
}

func (v *viewerLoop) readSketches(r *room) {
	ctx, cancel := context.WithTimeout(context.Background(), v.h.cfg.SubscribeTimeout)
	defer cancel()
	if msgs, err := v.h.multiLast(ctx, uniqueStream, []string{uniqueRoomFilter(r.name)}); err == nil {
		r.mergeSketches(msgs)
	}
}

// broadcast sends the room's online count and unique viewers if either changed.
func (v *viewerLoop) broadcast(r *room) {
	s := &r.state
	s.mu.Lock()
	s.init()
	online, unique := s.online(v.h.cfg.State.ViewerTTL), s.unique.Estimate()
	changed := online != s.sentOnline || unique != s.sentUnique
	s.sentOnline, s.sentUnique = online, unique
	s.mu.Unlock()
	if !changed {
		return
	}
	ev := strconv.AppendInt([]byte(`{"type":"online","online":`), int64(online), 10)
	ev = strconv.AppendUint(append(ev, `,"unique":`...), unique, 10)
	r.sendState("online", append(ev, '}'))
}
