package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

func cheerConfig() Config {
	return Config{
		CheerRate: 1000, CheerBurst: 1000, DrainPeriod: 50 * time.Millisecond,
		Fanout: fanout.Config{State: fanout.StateConfig{CheerInterval: 20 * time.Millisecond, CheerStateInterval: 20 * time.Millisecond}},
	}
}

// storedCheers reads the room's total from JetStream.
func storedCheers(t testing.TB, ns *server.Server, room string) int64 {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.Request("$JS.API.DIRECT.GET.LR_CHEERS.lr.cheer."+room, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("stored total %q: %v", m.Data, err)
	}
	n, _ := strconv.ParseInt(v.Val, 10, 64)
	return n
}

func cheer(c *stateClient, room, cid string, n int) (cheerResult, *cmdError, error) {
	f, err := c.call(map[string]any{"cmd": "cheer", "room": room, "cid": cid, "count": n})
	if err != nil || f.Error != nil {
		return cheerResult{}, f.Error, err
	}
	var res cheerResult
	return res, nil, json.Unmarshal(f.Result, &res)
}

// Viewers on two gateways cheer; one gateway is shut down mid-run and a new one
// started; its viewers reconnect to the new one and resend their unacknowledged cheers
// with the same cids. The stored total equals the taps credited, exactly, and every
// viewer's last total is that.
func TestCheersExactAcrossGatewayRestart(t *testing.T) {
	ns := startNATS(t)
	a, b := startGateway(t, ns, cheerConfig()), startGateway(t, ns, cheerConfig())
	const room, users, perUser = "cheers", 8, 30
	watcher := mustDialState(t, b.url)
	watcher.join(room, mintToken(t, "w", auth.RoleViewer, []string{room}, time.Hour))

	var (
		cURL     atomic.Pointer[string] // where a's viewers go once a is stopping
		progress = make(chan struct{}, users*perUser)
		mu       sync.Mutex
		credited = map[string]int64{}
		final    = make([]*stateClient, users)
		resent   atomic.Int64
		wg       sync.WaitGroup
		errs     = make(chan error, users)
	)
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("u", u)
			tok := mintToken(t, user, auth.RoleViewer, []string{room}, time.Hour)
			url := a.url
			if u%2 == 1 {
				url = b.url
			}
			connect := func() (*stateClient, error) {
				for range 50 {
					if p := cURL.Load(); p != nil && url == a.url {
						url = *p
					}
					c, err := dialState(t, url)
					if err != nil {
						continue // a refuses while draining: try again (then c)
					}
					f, err := c.call(map[string]any{"cmd": "join", "room": room, "token": tok})
					if err == nil && f.Error == nil {
						return c, nil
					}
				}
				return nil, fmt.Errorf("%s could not rejoin", user)
			}
			c, err := connect()
			if err != nil {
				errs <- err
				return
			}
			for j := range perUser {
				cid := fmt.Sprintf("%s-%d", user, j)
				for attempt := 0; ; attempt++ {
					if attempt == 100 {
						errs <- fmt.Errorf("%s: gave up on %s", user, cid)
						return
					}
					if attempt > 0 {
						resent.Add(1)
					}
					res, cerr, err := cheer(c, room, cid, 1+(u+j)%7)
					if err != nil { // the connection ended: reconnect and resend
						if c, err = connect(); err != nil {
							errs <- err
							return
						}
						continue
					}
					if cerr != nil {
						if cerr.Code == codeUnavailable || cerr.Code == codeRateLimited {
							continue
						}
						errs <- fmt.Errorf("%s: %v", cid, cerr)
						return
					}
					mu.Lock()
					credited[cid] = res.Credited
					mu.Unlock()
					break
				}
				progress <- struct{}{}
			}
			final[u] = c
		}()
	}

	// A third of the way in, start c and stop a.
	for range users * perUser / 3 {
		<-progress
	}
	cg := startGateway(t, ns, cheerConfig())
	cURL.Store(&cg.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var want int64
	for _, n := range credited {
		want += n
	}
	if len(credited) != users*perUser {
		t.Fatalf("%d cheers acknowledged, want %d", len(credited), users*perUser)
	}
	if got := storedCheers(t, ns, room); got != want {
		t.Fatalf("stored total %d, credited %d", got, want)
	}
	for i, c := range append(final, watcher) {
		ev := c.waitState("cheers", func(ev stateEvent) bool {
			if ev.Total > want {
				t.Errorf("viewer %d saw total %d > credited %d", i, ev.Total, want)
			}
			return ev.Total == want
		})
		_ = ev
	}
	dups := b.counter(t, "liveroom_cheer_resends_total") + cg.counter(t, "liveroom_cheer_resends_total") + a.counter(t, "liveroom_cheer_resends_total")
	t.Logf("total %d taps in %d commands; %d resends, %d answered as already counted", want, len(credited), resent.Load(), int(dups))
}

// A cheer resent on another gateway after it was counted is answered as a duplicate
// with the count credited the first time, and not counted again. Taps over the rate
// are refused and counted.
func TestCheerResendAndRateCap(t *testing.T) {
	ns := startNATS(t)
	cfg := cheerConfig()
	cfg.CheerRate, cfg.CheerBurst = 10, 10
	a, b := startGateway(t, ns, cfg), startGateway(t, ns, cfg)
	tok := mintToken(t, "u1", auth.RoleViewer, []string{"r"}, time.Hour)
	ca, cb := mustDialState(t, a.url), mustDialState(t, b.url)
	ca.join("r", tok)
	cb.join("r", tok)

	first, cerr, err := cheer(ca, "r", "x", 15)
	if err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if first.Credited != 10 || first.Refused != 5 || first.Total != 10 || first.Duplicate {
		t.Fatalf("first cheer = %+v, want 10 credited, 5 refused", first)
	}
	again, cerr, err := cheer(cb, "r", "x", 15)
	if err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if !again.Duplicate || again.Credited != 10 || again.Total != 10 {
		t.Fatalf("resent cheer = %+v, want a duplicate of 10 with total 10", again)
	}
	next, cerr, err := cheer(cb, "r", "y", 2)
	if err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if next.Duplicate || next.Credited != 2 || next.Total != 12 {
		t.Fatalf("next cheer = %+v, want 2 more, total 12", next)
	}
	if got := storedCheers(t, ns, "r"); got != 12 {
		t.Fatalf("stored %d, want 12", got)
	}
	if n := a.counter(t, "liveroom_cheer_taps_total", "result", "refused"); n != 5 {
		t.Errorf("refused taps = %v, want 5", n)
	}
	// The late joiner's snapshot has the total.
	late := mustDialState(t, b.url)
	if snap := late.join("r", mintToken(t, "u2", auth.RoleViewer, []string{"r"}, time.Hour)); snap.Cheers != 12 {
		t.Errorf("snapshot cheers = %d, want 12", snap.Cheers)
	}
}

// A cheer resent with "resend": true is looked up before it is batched: once counted,
// it is answered as a duplicate without a failed batch.
func TestCheerResendFlagLooksUpFirst(t *testing.T) {
	ns := startNATS(t)
	a, b := startGateway(t, ns, cheerConfig()), startGateway(t, ns, cheerConfig())
	tok := mintToken(t, "u1", auth.RoleViewer, []string{"r"}, time.Hour)
	ca, cb := mustDialState(t, a.url), mustDialState(t, b.url)
	ca.join("r", tok)
	cb.join("r", tok)
	if _, cerr, err := cheer(ca, "r", "x", 4); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	f, err := cb.call(map[string]any{"cmd": "cheer", "room": "r", "cid": "x", "count": 4, "resend": true})
	if err != nil || f.Error != nil {
		t.Fatal(err, f.Error)
	}
	var again cheerResult
	if err := json.Unmarshal(f.Result, &again); err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Credited != 4 || again.Total != 4 {
		t.Fatalf("resent cheer = %+v, want a duplicate of 4 with total 4", again)
	}
	if n := b.counter(t, "liveroom_cheer_batches_total", "result", "retried"); n != 0 {
		t.Errorf("retried batches = %v, want 0: the resend was looked up first", n)
	}
	if n := b.counter(t, "liveroom_cheer_stored_total", "result", "duplicate_commands"); n != 1 {
		t.Errorf("duplicate commands = %v, want 1", n)
	}
	if got := storedCheers(t, ns, "r"); got != 4 {
		t.Fatalf("stored %d, want 4", got)
	}
}
