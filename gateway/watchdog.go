package gateway

import "time"

// watchdog closes connections whose current socket write (socketWriter.writing) has
// taken longer than WriteTimeout: their peer stopped reading. One goroutine per gateway
// does this, so that writes need no per-write timer; it is also what bounds how long a
// writer goroutine can be held by one viewer.
func (g *Gateway) watchdog() {
	defer g.bg.Done()
	t := time.NewTicker(g.cfg.WriteTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			limit := now.Add(-g.cfg.WriteTimeout).UnixNano()
			for _, c := range g.snapshotConns() {
				if s := c.out.writing.Load(); s != 0 && s < limit {
					c.closeNow(CloseTooSlow, "too slow")
				}
			}
		}
	}
}
